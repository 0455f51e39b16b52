import { createPubSub as createYogaPubSub } from '@graphql-yoga/subscription';
import Redis from 'ioredis';
import type { PubSub as TypeGraphqlPubSub } from 'type-graphql';
import type { Config } from '../config';
import type { Logger } from './logger';
import type { RateLimitedLog } from './rate-limited-log';

export type PubSub = TypeGraphqlPubSub;

/** A process-local bus (for building the schema without a server). */
export function createPubSub(): PubSub {
  return createYogaPubSub() as unknown as PubSub;
}

/** Topics, named in one place. Payloads carry only ids: subscribers reload through their own read scope. */
export const TOPICS = {
  trainingRunUpdated: 'TRAINING_RUN_UPDATED',
  rolloutUpdated: 'ROLLOUT_UPDATED',
  auditExportUpdated: 'AUDIT_EXPORT_UPDATED',
  /** Broadcast (id `all`): an alert opened, escalated, acknowledged or resolved; the payload carries the alert. */
  alertChanged: 'ALERT_CHANGED',
  /** Per deployment: a monitor pass finished (`runId`). */
  monitorRan: 'MONITOR_RAN',
  /**
   * Broadcast (id `all`): roles, keys or teams changed; every instance forgets its cached principals
   * and long-lived subscriptions check their caller's rights again.
   */
  accessChanged: 'ACCESS_CHANGED',
  /** Per deployment: one of its iterations moved on (`iterationId`). */
  iterationUpdated: 'ITERATION_UPDATED',
} as const;

/** Events held per subscriber, at most, while it does not take them. */
export const MAX_QUEUED_EVENTS = 256;

/** A subscriber fell more than its queue behind: its stream ends (memory stays bounded). */
export class SlowConsumerError extends Error {
  constructor(max: number) {
    super(`Slow consumer: more than ${max} events waiting; the subscription was ended`);
    this.name = 'SlowConsumerError';
  }
}

/** One local subscriber of a shared channel: its own bounded queue, fed as events arrive. */
class LocalSubscriber<T> {
  private readonly queue: T[] = [];
  private wake: (() => void) | null = null;
  overflow = false;
  ended = false;

  constructor(private readonly maxQueued: number) {}

  /** False once this subscriber overflowed (and must be dropped from the channel). */
  push(event: T): boolean {
    if (this.queue.length >= this.maxQueued) {
      this.overflow = true;
      this.wake?.();
      return false;
    }
    this.queue.push(event);
    this.wake?.();
    return true;
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *events(detach: () => void): AsyncGenerator<T> {
    try {
      for (;;) {
        if (this.overflow) throw new SlowConsumerError(this.maxQueued);
        if (this.queue.length) {
          yield this.queue.shift()!;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
      }
    } finally {
      detach();
    }
  }
}

type Listener = (event: { type: string; detail: unknown }) => void;

/**
 * An EventTarget over Redis pub/sub for the pub/sub of graphql-yoga. Every Redis command's failure
 * is caught and logged: with Redis away, events are lost (the rows are the truth), never the
 * process (an unhandled rejection would end it).
 */
function redisEventTarget(publishClient: Redis, subscribeClient: Redis, log: Logger, redisTrouble?: RateLimitedLog) {
  const callbacks = new Map<string, Set<Listener>>();
  // A failure while Redis is away is one more sign of the outage (rate-limited); any other is told as it happens.
  const failed = (what: string) => (e: Error) =>
    redisTrouble && (publishClient.status !== 'ready' || subscribeClient.status !== 'ready')
      ? redisTrouble.warn('event bus', { err: e.message }, `event bus: ${what} failed`)
      : log.warn({ err: e.message }, `event bus: ${what} failed`);
  subscribeClient.on('message', (channel: string, message: string) => {
    const set = callbacks.get(channel);
    if (!set) return;
    let detail: unknown = null;
    try {
      detail = message === '' ? null : JSON.parse(message);
    } catch {
      return;
    }
    for (const cb of set) cb({ type: channel, detail });
  });
  return {
    addEventListener(topic: string, listener: Listener | null) {
      if (!listener) return;
      let set = callbacks.get(topic);
      if (!set) {
        callbacks.set(topic, (set = new Set()));
        subscribeClient.subscribe(topic).catch(failed('subscribe'));
      }
      set.add(listener);
    },
    removeEventListener(topic: string, listener: Listener | null) {
      const set = callbacks.get(topic);
      if (!set || !listener) return;
      set.delete(listener);
      if (set.size) return;
      callbacks.delete(topic);
      subscribeClient.unsubscribe(topic).catch(failed('unsubscribe'));
    },
    dispatchEvent(event: { type: string; detail?: unknown }) {
      publishClient.publish(event.type, event.detail === undefined ? '' : JSON.stringify(event.detail)).catch(failed('publish'));
      return true;
    },
  };
}

/** Publishes change notifications to subscribers on every instance. */
export interface EventPublisher {
  publish(topic: string, payload: { id: string; [field: string]: unknown }): void;
}

export interface EventBus extends EventPublisher {
  pubSub: PubSub;
  /**
   * The events of `topic` about `id`, from every instance. Events are taken off the bus as they
   * arrive and held for the consumer, at most `maxQueued` (default {@link MAX_QUEUED_EVENTS}); a
   * consumer that falls further behind gets {@link SlowConsumerError} and its stream ends.
   */
  subscribe(topic: string, id: string, maxQueued?: number): AsyncIterable<{ id: string }>;
  close(): void;
}

/**
 * Events that cross API instances through Redis pub/sub (two connections: one publishes, one
 * subscribes). Channels carry the deployment's Redis prefix, so installations sharing a Redis do
 * not hear each other.
 */
export function createEventBus(config: Config, log: Logger, redisTrouble?: RateLimitedLog): EventBus {
  const publishClient = new Redis(config.redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const subscribeClient = new Redis(config.redisUrl, { lazyConnect: false });
  // Both clients are one source: the bus works again once both do.
  if (redisTrouble) {
    const ready = () => publishClient.status === 'ready' && subscribeClient.status === 'ready';
    for (const c of [publishClient, subscribeClient]) {
      c.on('error', (e) => redisTrouble.warn('event bus', { err: e.message }, 'Redis connection error'));
      c.on('ready', () => ready() && redisTrouble.clear('event bus'));
    }
  } else for (const c of [publishClient, subscribeClient]) c.on('error', (e) => log.debug({ err: e.message }, 'event bus redis error'));
  const pubSub = createYogaPubSub({ eventTarget: redisEventTarget(publishClient, subscribeClient, log, redisTrouble) as never });
  const channel = (topic: string) => `${config.redisPrefix}${topic}`;
  // One bus subscription per channel and process, fanned out to its local subscribers: a thousand
  // WebSocket subscribers of one topic cost one Redis subscription and one buffer each, bounded.
  const channels = new Map<string, { subscribers: Set<LocalSubscriber<{ id: string }>>; source: AsyncIterator<{ id: string }> }>();
  const open = (topic: string, id: string) => {
    const key = `${channel(topic)}\u0000${id}`;
    let entry = channels.get(key);
    if (entry) return { key, entry };
    const source = (pubSub.subscribe as (t: string, id: string) => AsyncIterable<{ id: string }>)(channel(topic), id)[Symbol.asyncIterator]();
    const created = { subscribers: new Set<LocalSubscriber<{ id: string }>>(), source };
    channels.set(key, created);
    void (async () => {
      try {
        for (;;) {
          const next = await source.next();
          if (next.done) break;
          for (const s of created.subscribers) if (!s.push(next.value)) created.subscribers.delete(s);
        }
      } catch (e) {
        log.warn({ err: (e as Error).message, topic }, 'event subscription failed');
      } finally {
        for (const s of created.subscribers) s.end();
      }
    })();
    return { key, entry: created };
  };
  return {
    pubSub: pubSub as unknown as PubSub,
    publish(topic, payload) {
      try {
        (pubSub.publish as (t: string, id: string, p: unknown) => void)(channel(topic), payload.id, payload);
      } catch (e) {
        // Notifications are best effort: the row is the truth, a subscriber that misses one sees the next.
        log.warn({ err: (e as Error).message, topic }, 'event not published');
      }
    },
    subscribe(topic, id, maxQueued = MAX_QUEUED_EVENTS) {
      return {
        [Symbol.asyncIterator]: () => {
          const { key, entry } = open(topic, id);
          const subscriber = new LocalSubscriber<{ id: string }>(maxQueued);
          entry.subscribers.add(subscriber);
          return subscriber.events(() => {
            entry.subscribers.delete(subscriber);
            if (entry.subscribers.size === 0 && channels.get(key) === entry) {
              channels.delete(key);
              void entry.source.return?.();
            }
          });
        },
      };
    },
    close() {
      for (const entry of channels.values()) void entry.source.return?.();
      channels.clear();
      publishClient.disconnect();
      subscribeClient.disconnect();
    },
  };
}
