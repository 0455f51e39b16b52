import { recordDenial } from '../core/audit/audit-chain';
import type { RequestContext } from '../core/context';
import { CoreReason } from '../core/error-reasons';
import { AppError, badInput, ErrorCode } from '../core/errors';
import { authorizeField } from '../core/policy';
import { InferenceReason } from './inference.errors';
import { MAX_OUTCOMES_PER_CALL, outcomeDeployment, recordOutcomeBatch, type OutcomeDeployment, type OutcomeItem } from './outcome.service';

/**
 * The longest line of a bulk outcome body (room for the largest label and the other fields):
 * longer ones are reported and skipped, never buffered whole. With batches of 1,000 lines, what a
 * request holds is bounded by about 20 MiB, however long the body.
 */
export const MAX_OUTCOME_LINE_BYTES = 20 * 1024;

type Line = { line: number; text: string } | { line: number; tooLong: true };

/**
 * The lines of an NDJSON body, numbered from 1, read as the body arrives: memory holds one chunk
 * and one line of at most `maxBytes` (a longer line is reported as such and its bytes dropped up
 * to its end). Blank lines are skipped; a trailing CR is dropped.
 */
export async function* ndjsonLines(body: AsyncIterable<Buffer | string>, maxBytes = MAX_OUTCOME_LINE_BYTES): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let held = 0;
  let tooLong = false;
  let line = 0;
  const end = function* (): Generator<Line> {
    line += 1;
    if (tooLong) {
      tooLong = false;
      yield { line, tooLong: true };
      return;
    }
    let text = Buffer.concat(parts, held).toString('utf8');
    parts = [];
    held = 0;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() !== '') yield { line, text };
  };
  for await (const chunk of body) {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const hold = (piece: Buffer) => {
      if (tooLong) return;
      if (held + piece.length > maxBytes) {
        tooLong = true;
        parts = [];
        held = 0;
        return;
      }
      // Copied: the chunk's buffer may be reused by the stream.
      parts.push(Buffer.from(piece));
      held += piece.length;
    };
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10)) {
      hold(buf.subarray(0, nl));
      yield* end();
      buf = buf.subarray(nl + 1);
    }
    if (buf.length) hold(buf);
  }
  if (tooLong || held) yield* end();
}

/** The report of one batch of a bulk body: its lines, counts, digest and per-line errors. */
export interface OutcomeBatchReport {
  batch: number;
  firstLine: number;
  lastLine: number;
  received: number;
  recorded: number;
  duplicate: number;
  corrected: number;
  rejected: number;
  digest: string;
  errors: Array<{ line: number; code: string; reason: string | null; message: string; field: string | null }>;
}

/**
 * `POST /outcomes`: reads NDJSON outcome lines (each the shape of a `recordOutcomes` item) as they
 * arrive and records them in batches of `batchLines` (one transaction and one audit event each),
 * yielding each batch's report before reading on: the body is never held whole. A line that is not
 * JSON, too long or not a valid outcome is reported in its batch's errors; the rest of the batch is
 * kept. The deployment must already be authorised ({@link outcomeDeployment}).
 */
export async function* recordOutcomeStream(
  ctx: RequestContext,
  deployment: OutcomeDeployment,
  body: AsyncIterable<Buffer | string>,
  batchLines = MAX_OUTCOMES_PER_CALL,
): AsyncGenerator<OutcomeBatchReport> {
  let items: OutcomeItem[] = [];
  let batch = 0;
  const flush = async (): Promise<OutcomeBatchReport> => {
    batch += 1;
    const first = items[0].index;
    const last = items[items.length - 1].index;
    const summary = await recordOutcomeBatch(ctx, deployment, items, { source: 'bulk', batch });
    items = [];
    const { results: _results, ...counts } = summary;
    return {
      batch,
      firstLine: first,
      lastLine: last,
      ...counts,
      errors: summary.results.filter((r) => r.error).map((r) => ({ line: r.index, ...r.error! })),
    };
  };
  for await (const l of ndjsonLines(body)) {
    if ('tooLong' in l) {
      items.push({ index: l.line, error: badInput(`The line is longer than ${MAX_OUTCOME_LINE_BYTES} bytes`, { reason: InferenceReason.INVALID_OUTCOME }) });
    } else {
      try {
        items.push({ index: l.line, value: JSON.parse(l.text) as unknown });
      } catch {
        items.push({ index: l.line, error: badInput('The line is not valid JSON', { reason: CoreReason.MALFORMED_JSON }) });
      }
    }
    if (items.length >= batchLines) yield await flush();
  }
  if (items.length) yield await flush();
}

const RECORD_OUTCOME = { action: 'recordOutcome', subject: 'Deployment' } as const;

/**
 * The deployment of a bulk outcome request, through the same policy path as `recordOutcomes`
 * (the declared policy, then the instance): a refusal is audited as DENIED, as the GraphQL guard
 * audits it, and thrown.
 */
export async function bulkOutcomeDeployment(ctx: RequestContext, deployment: string): Promise<OutcomeDeployment> {
  try {
    authorizeField(ctx, RECORD_OUTCOME);
    return await outcomeDeployment(ctx, deployment);
  } catch (e) {
    if (e instanceof AppError && ctx.principal && (e.code === ErrorCode.FORBIDDEN || e.details.denied === true)) {
      throw await recordDenial(
        ctx,
        { action: 'recordOutcomes', subjectType: 'Deployment', subjectId: (e.details.subjectId as string | undefined) ?? null, reason: e.message },
        e,
      );
    }
    throw e;
  }
}
