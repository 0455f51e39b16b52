import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { EntityManager } from 'typeorm';
import { audit, recordDenial } from '../core/audit/audit-chain';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, forbidden, unauthenticated } from '../core/errors';
import { ArtifactRejectedError, ArtifactTooLargeError } from '../core/artifact-store';
import { DatasetBlob } from './dataset-blob.entity';
import { DatasetVersion } from './dataset-version.entity';
import { LineageReason } from './lineage.errors';

export interface StoredDatasetContent {
  sha256: string;
  sizeBytes: number;
  rowCount: number;
  columns: string[];
  /**
   * false when the caller already had these bytes: it stored them first, or may read a dataset
   * version made of them. Content only other teams hold answers like content never seen (true), so
   * that an upload cannot confirm a guess of data the caller may not read; storage is shared either way.
   */
  created: boolean;
}

/** Reads a CSV (header row, comma-separated, no quoted fields) line by line; returns its shape or why it is refused. */
async function inspectCsv(file: string): Promise<{ columns: string[]; rowCount: number } | string> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let columns: string[] | null = null;
  let rowCount = 0;
  let lineNo = 0;
  for await (const line of lines) {
    lineNo += 1;
    if (line.includes('\uFFFD')) return `line ${lineNo} is not valid UTF-8`;
    if (line.includes('"')) return `line ${lineNo}: quoted fields are not supported`;
    if (columns === null) {
      columns = line.split(',').map((c) => c.trim());
      if (columns.some((c) => !/^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/.test(c))) return 'the header must name every column (letters, digits, "_", ".", "-")';
      if (new Set(columns).size !== columns.length) return 'the header names a column twice';
      continue;
    }
    if (line === '') continue;
    const n = line.split(',').length;
    if (n !== columns.length) return `line ${lineNo} has ${n} fields; the header has ${columns.length}`;
    rowCount += 1;
  }
  if (!columns) return 'the file is empty';
  if (rowCount === 0) return 'the file has a header but no rows';
  return { columns, rowCount };
}

/** Whether stored content was already the caller's: uploaded by it, or behind a dataset version it may read. */
async function alreadyHeld(ctx: RequestContext, em: EntityManager, sha256: string): Promise<boolean> {
  const blob = await em.findOneByOrFail(DatasetBlob, { sha256 });
  if (blob.createdBy === ctx.principal!.id) return true;
  const versions = em.getRepository(DatasetVersion).createQueryBuilder('x').where('x.sha256 = :sha256', { sha256 });
  return ctx.loaders.scope(versions, 'DatasetVersion', 'x').getExists();
}

/**
 * Receives dataset content (CSV) into the content-addressed store, like model artifacts: the
 * server computes the sha256 and chooses the path. A dataset version whose sha256 matches can then
 * be trained on. One audit event.
 */
export async function uploadDatasetContent(ctx: RequestContext, body: Readable): Promise<StoredDatasetContent> {
  if (!ctx.principal) throw ctx.authError ?? unauthenticated();
  if (!ctx.ability.can('create', 'DatasetVersion')) {
    const refused = forbidden('Not allowed to upload dataset content');
    throw await recordDenial(ctx, { action: 'uploadDatasetContent', subjectType: 'DatasetContent', reason: refused.message }, refused);
  }
  const store = ctx.app.artifacts;
  let received: Awaited<ReturnType<typeof store.receive>>;
  try {
    received = await store.receive(body, ctx.app.config.datasetMaxBytes);
  } catch (e) {
    if (e instanceof ArtifactTooLargeError) throw new ArtifactRejectedError(e.message, 413);
    throw e;
  }
  try {
    const shape = await inspectCsv(received.tempPath);
    if (typeof shape === 'string') throw badInput(`Not a CSV this server can train on: ${shape}`, { reason: LineageReason.DATASET_NOT_CSV });
    return await inTransaction(ctx, async (em, ctx) => {
      await store.commit(received.tempPath, received.sha256);
      const inserted = await em
        .createQueryBuilder()
        .insert()
        .into(DatasetBlob)
        .values({ sha256: received.sha256, sizeBytes: received.sizeBytes, rowCount: shape.rowCount, columns: shape.columns, createdBy: ctx.principal!.id })
        .orIgnore()
        .returning('sha256')
        .execute();
      const stored = inserted.raw.length > 0;
      const created = stored || !(await alreadyHeld(ctx, em, received.sha256));
      const result = { sha256: received.sha256, sizeBytes: received.sizeBytes, rowCount: shape.rowCount, columns: shape.columns, created };
      await audit(ctx, {
        action: 'uploadDatasetContent',
        subjectType: 'DatasetContent',
        subjectId: received.sha256,
        reason: stored ? null : 'identical content already stored',
        after: result,
      });
      return result;
    });
  } finally {
    await store.discard(received.tempPath);
  }
}
