import type { DataSource, EntityManager } from 'typeorm';
import type Redis from 'ioredis';
import type { AppAbility, Principal } from '../access/ability';
import type { Config } from '../config';
import type { AppError } from './errors';
import type { EventBus } from './events';
import type { Logger } from './logger';
import type { Loaders } from './loaders';
import type { ArtifactStore } from '../registry/artifact-store';
import type { TrainingExecutor } from '../lineage/executor';
import type { OutboxDispatcher } from '../queue/dispatcher';
import type { Queues } from '../queue/queues';
import type { InferenceEngine } from '../inference/inference.engine';
import type { DenialRecorder } from '../audit/audit-denials';

/** Publishes change notifications to subscribers on every instance. */
export interface EventPublisher {
  publish(topic: string, payload: { id: string; [field: string]: unknown }): void;
}

/** The long-lived parts every request and job shares. */
export interface AppServices {
  config: Config;
  db: DataSource;
  redis: Redis;
  log: Logger;
  artifacts: ArtifactStore;
  executor: TrainingExecutor;
  /** Present where this process hands queued work to BullMQ. */
  queues?: Queues;
  dispatcher?: OutboxDispatcher;
  events?: EventBus;
  /** Present in API processes that serve predictions. */
  inference?: InferenceEngine;
  /** Records refused attempts (rate-limited, folded); without one, each is written as it happens. */
  denials?: DenialRecorder;
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
