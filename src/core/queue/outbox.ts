import type { EntityManager } from 'typeorm';
import { OutboxEntry } from './outbox.entity';
import type { QueueName } from './queues';

export const OUTBOX_CHANNEL = 'modelgov_outbox';

/**
 * Records work for the queue inside the caller's transaction: it is dispatched only if the
 * transaction commits, and then at least once. `jobId` is the id of the row the work is about
 * (BullMQ refuses a second job with the same id, so a re-dispatch does not duplicate it). With
 * `ifAbsent`, an entry already recorded under `jobId` is kept and this one dropped.
 */
export async function enqueue(
  em: EntityManager,
  entry: { queue: QueueName; name: string; jobId: string; payload: object; delayMs?: number; ifAbsent?: boolean },
): Promise<void> {
  const values = {
    queue: entry.queue,
    jobName: entry.name,
    jobId: entry.jobId,
    payload: entry.payload,
    availableAt: new Date(Date.now() + (entry.delayMs ?? 0)),
  };
  // `ifAbsent`: work already recorded under this job id (a batch's one job) is left as it is.
  if (entry.ifAbsent) await em.createQueryBuilder().insert().into(OutboxEntry).values(values).orIgnore().execute();
  else await em.insert(OutboxEntry, values);
  // Delivered at commit: wakes every dispatcher listening, on any instance.
  await em.query(`SELECT pg_notify($1, $2)`, [OUTBOX_CHANNEL, entry.queue]);
}
