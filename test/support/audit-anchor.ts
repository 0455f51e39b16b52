import { readFile } from 'node:fs/promises';
import type { TestServer } from './harness';

/** The lines of an anchor file, parsed (none when it does not exist). */
export async function anchorLines(file: string): Promise<Array<{ seq: number; hash: string; keyId: string; database: { id: string; name: string }; [k: string]: unknown }>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

/** The chain head as the database records it (undefined for an empty chain). */
export async function chainHead(t: TestServer): Promise<{ seq: number; hash: string } | undefined> {
  const [head] = await t.sql<{ seq: number; hash: string }>('SELECT seq::int AS seq, hash FROM audit_head WHERE id = 1');
  return head;
}

/**
 * What someone with full rights on the database can do: switch the append-only trigger off, run
 * `statements`, and switch it back on.
 */
export async function asDatabaseOwner(t: TestServer, ...statements: string[]): Promise<void> {
  await t.sql('ALTER TABLE audit_event DISABLE TRIGGER USER');
  try {
    for (const s of statements) await t.sql(s);
  } finally {
    await t.sql('ALTER TABLE audit_event ENABLE TRIGGER USER');
  }
}

/** Removes every event after `seq` and points the chain head at event `seq`: the chain stays consistent. */
export function truncateChainTo(t: TestServer, seq: number): Promise<void> {
  return asDatabaseOwner(
    t,
    `DELETE FROM audit_event WHERE seq > ${seq}`,
    `UPDATE audit_head SET seq = ${seq}, hash = (SELECT hash FROM audit_event WHERE seq = ${seq}) WHERE id = 1`,
  );
}
