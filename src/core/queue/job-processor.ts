import { UnrecoverableError, type Job, type Processor } from 'bullmq';
import type { AppServices, RequestContext } from '../context';
import { AppError, ErrorCode } from '../errors';
import { contextFromJob, recordedContext, type JobOrigin, type JobPayload } from '../job-context';

/** Which attempt of its job a run is, and whether it is the last one BullMQ will make. */
export interface JobAttempt {
  number: number;
  final: boolean;
}

/** What a job does, as the context it carries. */
export interface JobHandler<T extends JobPayload> {
  /** The job's work: one domain service. Throws to be retried (UnrecoverableError: not retried). */
  run(ctx: RequestContext, data: T, attempt: JobAttempt): Promise<void>;
  /**
   * The job will not be tried again: closes what it was about (a run FAILED, a rollout rolled back)
   * rather than leave it half-way. Idempotent: work already closed is left as it is.
   */
  giveUp?(ctx: RequestContext, data: T, reason: string): Promise<void>;
}

const REFUSED: ReadonlySet<string> = new Set([ErrorCode.UNAUTHENTICATED, ErrorCode.FORBIDDEN]);

/**
 * The processor of a job that acts as the principal that caused it: rebuilds the job's context
 * (its principal's rights as they are now) and runs `handler.run`. A principal that may no longer
 * do the work (UNAUTHENTICATED: its key revoked or expired; FORBIDDEN: its rights changed) fails
 * the job at once, since no retry can help; then, as after the last attempt and after any failure
 * no retry can fix, `handler.giveUp` closes the work, with the reason. When the principal itself
 * could not be established again, the closing is recorded as the principal the job was queued as.
 */
export function jobProcessor<T extends JobPayload>(app: AppServices, handler: JobHandler<T>): Processor<T> {
  return async (job: Job<T>): Promise<void> => {
    const attempt: JobAttempt = { number: job.attemptsMade + 1, final: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) };
    const origin: JobOrigin = { queue: job.queueName, id: String(job.id) };
    let ctx: RequestContext | null = null;
    try {
      ctx = await contextFromJob(app, job.data, origin);
      await handler.run(ctx, job.data, attempt);
    } catch (e) {
      const refused = e instanceof AppError && REFUSED.has(e.code);
      const lastTry = attempt.final || refused || e instanceof UnrecoverableError;
      const reason = refused ? `${(e as AppError).code}: ${(e as Error).message}` : attempt.final && !(e instanceof UnrecoverableError) ? `gave up after ${attempt.number} attempts: ${(e as Error).message}` : (e as Error).message;
      if (lastTry && handler.giveUp) await handler.giveUp(ctx ?? recordedContext(app, job.data, origin), job.data, reason);
      throw refused ? new UnrecoverableError(reason) : e;
    }
  };
}
