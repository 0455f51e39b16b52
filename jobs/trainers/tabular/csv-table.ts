/** Reads the CSV datasets into tables of text cells (checking each file's sha256 when given) and joins tables of one role. */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InputError } from './input-error';
import type { DatasetRef } from './settings';

/** A dataset's header and rows of trimmed text cells. */
export interface Table {
  columns: string[];
  rows: string[][];
  // Where each row starts, for messages: `file:line`.
  where: string[];
}

function parseCsv(text: string, source: string): Table {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: Array<{ cells: string[]; line: number }> = [];
  let cells: string[] = [];
  let cell = '';
  let line = 1;
  let recordLine = 1;
  let quoted = false;
  let cellWasQuoted = false;

  const endRecord = (): void => {
    cells.push(cell);
    // A blank line is no record; a lone quoted empty cell still is one.
    if (!(cells.length === 1 && cells[0] === '' && !cellWasQuoted)) records.push({ cells, line: recordLine });
    cells = [];
    cell = '';
    cellWasQuoted = false;
  };

  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (c === '\n') line++;
        cell += c;
      }
    } else if (c === '"' && cell === '') {
      quoted = true;
      cellWasQuoted = true;
    } else if (c === ',') {
      cells.push(cell);
      cell = '';
      cellWasQuoted = false;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      cell += c;
    }
  }
  if (quoted) throw new InputError(`${source}: unterminated quoted field starting on line ${recordLine}`);
  if (cell !== '' || cells.length > 0 || cellWasQuoted) endRecord();

  if (records.length === 0) throw new InputError(`${source}: file is empty (no header row)`);
  const columns = records[0].cells.map((c) => c.trim());
  const seen = new Set<string>();
  for (const name of columns) {
    if (name === '') throw new InputError(`${source}: header has an empty column name`);
    if (seen.has(name)) throw new InputError(`${source}: header names column '${name}' twice`);
    seen.add(name);
  }
  const rows: string[][] = [];
  const where: string[] = [];
  for (const record of records.slice(1)) {
    if (record.cells.length !== columns.length) {
      throw new InputError(`${source}:${record.line}: ${record.cells.length} fields, header has ${columns.length}`);
    }
    rows.push(record.cells.map((c) => c.trim()));
    where.push(`${source}:${record.line}`);
  }
  return { columns, rows, where };
}

/** Reads each dataset file as CSV, refusing a file whose sha256 is not the one given. */
export function loadTables(refs: DatasetRef[]): Table[] {
  return refs.map((ref) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(ref.path);
    } catch (err) {
      throw new InputError(`cannot read dataset ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (ref.sha256 !== undefined) {
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== ref.sha256.toLowerCase()) throw new InputError(`dataset ${ref.path}: sha256 is ${actual}, expected ${ref.sha256}`);
    }
    return parseCsv(bytes.toString('utf8'), path.basename(ref.path));
  });
}

/** The rows of several tables of one role; they must share their set of columns, and rows follow the first table's column order. */
export function concatTables(tables: Table[], role: string): Table {
  const [first] = tables;
  const rows: string[][] = [];
  const where: string[] = [];
  for (const table of tables) {
    const index = first.columns.map((name) => table.columns.indexOf(name));
    if (table.columns.length !== first.columns.length || index.includes(-1)) {
      throw new InputError(`${role} datasets do not share the same columns`);
    }
    for (let r = 0; r < table.rows.length; r++) {
      rows.push(index.map((i) => table.rows[r][i]));
      where.push(table.where[r]);
    }
  }
  return { columns: first.columns, rows, where };
}
