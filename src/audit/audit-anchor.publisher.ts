import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config';
import { anchorLine, type AuditAnchor } from './audit-anchor.format';

/**
 * Where anchors of the audit chain are published: somewhere the database's administrators cannot
 * rewrite. One implementation today (an append-only NDJSON file); a notification channel, an
 * object store with retention lock or a transparency log can be added beside it.
 */
export interface AuditAnchorPublisher {
  /** Where the anchors go, as an operator names it (a path, a URL), for messages. */
  readonly target: string;
  /**
   * The newest anchor published here, as published (one NDJSON line), or null when there is none.
   * Publishing compares it with the chain head, so that an unmoved head is not published twice.
   */
  latest(): Promise<string | null>;
  /** Publishes one anchor; resolves once it is durable. */
  publish(anchor: AuditAnchor): Promise<void>;
}

// The newest line is searched for in this much of the file's end (an anchor line is ~450 bytes).
const TAIL_BYTES = 64 * 1024;

/** Appends each anchor as one line to a file (AUDIT_ANCHOR_FILE), and flushes it to disk. */
export class NdjsonFileAnchorPublisher implements AuditAnchorPublisher {
  constructor(readonly target: string) {}

  async latest(): Promise<string | null> {
    const handle = await open(this.target, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (!handle) return null;
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, TAIL_BYTES);
      const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
      const tail = buffer.toString('utf8');
      if (tail.trim() === '') return null;
      // A line cut short (a write interrupted by a crash) is not an anchor to compare with: say so rather than publish after it.
      if (!tail.endsWith('\n')) throw new Error(`${this.target} ends with an incomplete line; move the file aside or end that line by hand before anchoring again`);
      const lines = tail.split('\n').filter((l) => l.trim() !== '');
      return lines[lines.length - 1];
    } finally {
      await handle.close();
    }
  }

  async publish(anchor: AuditAnchor): Promise<void> {
    await mkdir(path.dirname(this.target), { recursive: true });
    // One write of one line in append mode: lines from several processes never interleave.
    const handle = await open(this.target, 'a', 0o644);
    try {
      await handle.write(anchorLine(anchor));
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
}

/** The publishers this configuration names (today: the anchor file). */
export function anchorPublishers(config: Pick<Config, 'auditAnchorFile'>): AuditAnchorPublisher[] {
  return [new NdjsonFileAnchorPublisher(config.auditAnchorFile)];
}
