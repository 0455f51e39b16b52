import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildSchema, Kind, parse, validate, type DocumentNode } from 'graphql';
import { repoRoot } from '../support/repo';

/** One documented operation: where it is written and its text. */
interface Documented {
  where: string;
  text: string;
}

const root = repoRoot();
const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

/** The README's ```graphql blocks. */
function readmeOperations(): Documented[] {
  const text = readFileSync(path.join(root, 'README.md'), 'utf8');
  return [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => ({ where: `README.md:${lineOf(text, m.index!)}`, text: m[1] }));
}

/** The operations the client examples send: template literals that begin with query, mutation or subscription. */
function exampleOperations(): Documented[] {
  const dir = path.join(root, 'client-examples');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.mjs'))
    .flatMap((f) => {
      const text = readFileSync(path.join(dir, f), 'utf8');
      return [...text.matchAll(/`(\s*(?:query|mutation|subscription)\b[^`]*)`/g)].map((m) => ({ where: `client-examples/${f}:${lineOf(text, m.index!)}`, text: m[1] }));
    });
}

describe('documented operations', () => {
  const schema = buildSchema(readFileSync(path.join(root, 'schema', 'schema.graphql'), 'utf8'));
  const documented = [...readmeOperations(), ...exampleOperations()];

  it('finds the operations the README and the client examples show', () => {
    assert.ok(readmeOperations().length >= 10, `${readmeOperations().length} README operations`);
    assert.ok(exampleOperations().length >= 20, `${exampleOperations().length} client-example operations`);
  });

  it('every one parses and is valid against the committed schema', () => {
    const failures: string[] = [];
    for (const d of documented) {
      // In a client example `${…}` is JavaScript building the text; in the README it is a rule's placeholder, written as it is.
      if (d.where.startsWith('client-examples/') && d.text.includes('${')) {
        failures.push(`${d.where}: built from interpolated text; write it with variables instead`);
        continue;
      }
      let doc: DocumentNode;
      try {
        doc = parse(d.text);
      } catch (e) {
        failures.push(`${d.where}: ${(e as Error).message}`);
        continue;
      }
      for (const error of validate(schema, doc)) failures.push(`${d.where}: ${error.message}`);
    }
    assert.deepEqual(failures, []);
  });

  it('every operation is named, and no two share a name (code generators take them together)', () => {
    const seen = new Map<string, string>();
    const failures: string[] = [];
    for (const d of documented) {
      let doc: DocumentNode;
      try {
        doc = parse(d.text);
      } catch {
        continue; // reported above
      }
      for (const def of doc.definitions) {
        if (def.kind !== Kind.OPERATION_DEFINITION) continue;
        const name = def.name?.value;
        if (!name) failures.push(`${d.where}: an anonymous ${def.operation}`);
        else if (seen.has(name)) failures.push(`${d.where}: ${name} is also the name of an operation at ${seen.get(name)}`);
        else seen.set(name, d.where);
      }
    }
    assert.deepEqual(failures, []);
  });
});
