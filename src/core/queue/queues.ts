import { Queue, type ConnectionOptions } from 'bullmq';
import Redis from 'ioredis';
import type { Config } from '../../config';
import type { RateLimitedLog } from '../rate-limited-log';
import { followConnection } from '../rate-limited-log';
import { withTimeout } from '../timeout';

/** Every queue, named in one place. */
export const QUEUES = {
  training: 'training',
  rollouts: 'rollouts',
  auditExports: 'audit-exports',
  auditRetention: 'audit-retention',
  auditAnchor: 'audit-anchor',
  monitors: 'monitors',
  loop: 'loop',
  notifications: 'notifications',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/** BullMQ keys live under the deployment's Redis prefix (BullMQ does not support ioredis keyPrefix). */
export const bullPrefix = (config: Config) => `${config.redisPrefix}bull`;

/**
 * A producer connection fails fast while Redis is away (the outbox keeps the work); workers wait
 * for Redis indefinitely, as BullMQ requires.
 */
export function redisFor(config: Config, role: 'producer' | 'worker'): Redis {
  return role === 'producer'
    ? new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false })
    : new Redis(config.redisUrl, { maxRetriesPerRequest: null });
}

/** The producer side of every queue, sharing one connection. */
export class Queues {
  private readonly queues = new Map<QueueName, Queue>();
  readonly connection: Redis;

  /**
   * @param redisTrouble where the connection's failures are reported (rate-limited); without it
   * they surface only where jobs are added (the dispatcher retries). It keeps reconnecting either way.
   */
  constructor(
    private readonly config: Config,
    readonly redisTrouble?: RateLimitedLog,
  ) {
    this.connection = redisFor(config, 'producer');
    if (redisTrouble) followConnection(this.connection, redisTrouble, 'queues', 'Redis connection error');
    else this.connection.on('error', () => undefined);
  }

  get(name: QueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection as unknown as ConnectionOptions, prefix: bullPrefix(this.config) });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  async close(): Promise<void> {
    // A queue whose Redis never answered would wait for it forever: give up after a moment.
    await Promise.all([...this.queues.values()].map((q) => withTimeout(q.close(), 3000).catch(() => undefined)));
    this.connection.disconnect();
  }
}
