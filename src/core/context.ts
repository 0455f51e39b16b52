import type { DataSource, EntityManager } from 'typeorm';
import type Redis from 'ioredis';
import type { AppAbility, Principal } from './ability';
import type { Config } from '../config';
import type { AppError } from './errors';
import type { EventBus } from './events';
export type { EventPublisher } from './events';
import type { Logger } from './logger';
import type { Loaders } from './loaders';
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
}

/**
 * Everything a service method needs about the caller, passed first to every service call:
 * who (principal, ability), which request (requestId, log), and the shared services.
 */
export interface RequestContext {
  requestId: string;
  principal: Principal | null;
  /** Why authentication failed, when a credential was presented and refused. */
  authError: AppError | null;
  ability: AppAbility;
  app: AppServices;
  log: Logger;
  loaders: Loaders;
  /** Set inside a transaction started by {@link inTransaction}. */
  em?: EntityManager;
  /** Audit events written for this request (each mutation must write exactly one). */
  auditEvents: number;
  /**
   * For long-lived operations (subscriptions): checks the credential again and refreshes the
   * principal, its ability and the loaders, or throws UNAUTHENTICATED.
   */
  reauthenticate?: () => Promise<void>;
  /**
   * For subscriptions: ends this one with `reason` as its only `error` message (FORBIDDEN,
   * `SUBSCRIPTION_RIGHT_LOST`, audited as a denial) and returns that error, for the caller to throw.
   */
  endSubscription?: (reason: string) => Promise<Error>;
}

// Deadlock and serialization failures: PostgreSQL rolled everything back, so the work can run again.
const RETRYABLE = new Set(['40P01', '40001']);

/**
 * Runs `work` in one transaction; audit events written through `ctx` join it. A transaction that
 * PostgreSQL aborted as a deadlock victim is run again (up to three times in all).
 */
export async function inTransaction<T>(ctx: RequestContext, work: (em: EntityManager) => Promise<T>): Promise<T> {
  if (ctx.em) return work(ctx.em);
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.app.db.transaction(async (em) => {
        ctx.em = em;
        try {
          return await work(em);
        } finally {
          ctx.em = undefined;
        }
      });
    } catch (e) {
      const code = (e as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (e as { code?: string }).code;
      if (attempt >= 3 || !code || !RETRYABLE.has(code)) throw e;
    }
  }
}
