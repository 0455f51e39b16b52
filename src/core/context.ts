import type { DataSource, EntityManager } from 'typeorm';
import type Redis from 'ioredis';
import type { AppAbility, Principal } from './ability';
import type { Config } from '../config';
import type { AppError } from './errors';
import type { EventBus } from './events';
export type { EventPublisher } from './events';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import { Loaders } from './loaders';
import type { ArtifactStore } from './artifact-store';
import type { OutboxDispatcher } from './queue/dispatcher';
import type { Queues } from './queue/queues';
import type { DeniedAttempt } from './audit/audit-entry';

/** Where refused attempts go: rate-limited and folded (see DenialRecorder); answers the seconds to wait, or 0. */
export interface DenialSink {
  record(who: Pick<RequestContext, 'principal' | 'requestId' | 'log'>, attempt: DeniedAttempt): Promise<number>;
  /** Writes what is folded so far (all of it, or only what is due). */
  flush(all?: boolean): Promise<void>;
}

/**
 * The long-lived parts every request and job shares. Domains add their own parts (the training
 * executor, the inference engine) by augmenting this interface beside their code.
 */
export interface AppServices {
  config: Config;
  db: DataSource;
  redis: Redis;
  log: Logger;
  artifacts: ArtifactStore;
  /** Present where this process hands queued work to BullMQ. */
  queues?: Queues;
  dispatcher?: OutboxDispatcher;
  events?: EventBus;
  /** Records refused attempts (rate-limited, folded); without one, each is written as it happens. */
  denials?: DenialSink;
  /** This process's Prometheus metrics (served at GET /metrics by an API process). */
  metrics?: Metrics;
}

/** A principal and what it may do, as established at one moment. */
export interface Rights {
  readonly principal: Principal;
  readonly ability: AppAbility;
}

/**
 * A subscription's hold on its caller's rights, kept by the operation, not by its context (which
 * never changes): the subscription guard checks them again when access changes anywhere, when the
 * credential expires and now and then; each event may ask for a check of its own.
 */
export interface LiveRights {
  /** The rights as last checked, and whether another check is due (access changed since, or a few seconds passed). */
  current(): Rights & { due: boolean };
  /**
   * Checks the credential and the operation's root fields again now: the fresh rights; throws when
   * either no longer holds (after ending the socket or the operation, audited).
   */
  recheck(): Promise<Rights>;
  /**
   * Ends the subscription with `reason` as its only `error` message (FORBIDDEN,
   * `SUBSCRIPTION_RIGHT_LOST`, audited as a denial) and returns that error, for the caller to throw.
   */
  end(reason: string): Promise<Error>;
}

/**
 * How work reached its principal when it is not a request of that principal's own: the jobs it came
 * through, and whom the principal acts for. Recorded on every audit event the work writes.
 */
export interface Via {
  /** The jobs, oldest first (`queue/job id`): the last one is doing the work. */
  readonly jobs: readonly string[];
  /** Whom the principal acts for, nearest first (a named system principal: whoever set its schedule or policy). */
  readonly onBehalfOf: readonly string[];
}

/** Audit events written for one request, shared by every context derived from it. */
export interface AuditTally {
  written: number;
}

/**
 * Everything a service method needs about the caller, passed first to every service call:
 * who (principal, ability), which request (requestId, log), and the shared services. A context is
 * never changed once made: work that needs something else (a transaction, fresh rights for a
 * subscription's next event) gets a context derived from it.
 */
export interface RequestContext {
  readonly requestId: string;
  readonly principal: Principal | null;
  /** Why authentication failed, when a credential was presented and refused. */
  readonly authError: AppError | null;
  readonly ability: AppAbility;
  readonly app: AppServices;
  readonly log: Logger;
  readonly loaders: Loaders;
  /** Present in the context {@link inTransaction} hands its work: the transaction's entity manager. */
  readonly em?: EntityManager;
  /** Audit events written for this request (each mutation must write exactly one). */
  readonly auditEvents: AuditTally;
  /** For work done by a job: how it reached its principal (absent for a request of the principal's own). */
  readonly via?: Via;
  /** For a subscription: its hold on the caller's rights while it runs (see {@link LiveRights}). */
  readonly live?: LiveRights;
}

/** A context inside a transaction: what it writes, and the audit events it appends, commit together. */
export interface TransactionContext extends RequestContext {
  readonly em: EntityManager;
}

/**
 * A new context for `principal` (null: anonymous), with its own loaders, log and audit tally. The
 * loaders and the log are made on first use: a request that never reads the database or logs (a
 * prediction) pays for neither.
 */
export function createContext(
  app: AppServices,
  who: { requestId: string; principal: Principal | null; ability: AppAbility; authError?: AppError | null },
): RequestContext {
  let log: Logger | undefined;
  let loaders: Loaders | undefined;
  return {
    requestId: who.requestId,
    principal: who.principal,
    authError: who.authError ?? null,
    ability: who.ability,
    app,
    get log() {
      return (log ??= app.log.child({ requestId: who.requestId, principal: who.principal?.id ?? null }));
    },
    get loaders() {
      return (loaders ??= new Loaders(app.db, who.ability));
    },
    auditEvents: { written: 0 },
  };
}

// Deadlock and serialization failures: PostgreSQL rolled everything back, so the work can run again.
const RETRYABLE = new Set(['40P01', '40001']);

/**
 * Runs `work` in one transaction, handing it the transaction's entity manager and a context derived
 * from `ctx` that carries it: audit events and nested calls made through that context join the
 * transaction; `ctx` itself is left as it was, so other work of the same request (fields resolved
 * concurrently) never joins it. Given a context that is already in a transaction, `work` runs in
 * that one. A transaction that PostgreSQL aborted as a deadlock victim is run again (up to three
 * times in all).
 */
export async function inTransaction<T>(ctx: RequestContext, work: (em: EntityManager, tx: TransactionContext) => Promise<T>): Promise<T> {
  if (ctx.em) return work(ctx.em, ctx as TransactionContext);
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.app.db.transaction((em) => work(em, { ...ctx, em }));
    } catch (e) {
      const code = (e as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (e as { code?: string }).code;
      if (attempt >= 3 || !code || !RETRYABLE.has(code)) throw e;
    }
  }
}
