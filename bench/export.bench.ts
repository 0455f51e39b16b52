import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { verifyExport } from '../src/audit/audit-export.verify';
import { appendGeneratedEvents } from '../test/support/audit-chain';
import { startTestServer } from '../test/support/harness';
import { printTable } from './stats';

interface Measured {
  seconds: number;
  bytes: number;
  peakRssGrowthMb: number;
}

// A full collection before each baseline, so that garbage left by earlier steps does not hide growth.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Samples this process's RSS (the server's) while `work` runs; returns the highest value seen above
 * the start, and the seconds `work` took. The clock starts after the collection that sets the
 * baseline, so that its cost is in no row (it would pull every ratio toward 1).
 */
async function withRss<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number; peakGrowthMb: number }> {
  gc();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  try {
    const t0 = performance.now();
    const value = await work();
    const seconds = (performance.now() - t0) / 1000;
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, seconds, peakGrowthMb: (peak - base) / 1024 ** 2 };
  } finally {
    clearInterval(timer);
  }
}

/** Downloads an export, counting bytes and keeping nothing (or, for `keep`, the text, to verify it). */
async function download(url: string, token: string, keep = false): Promise<{ bytes: number; text: string }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`export answered ${res.status}: ${await res.text()}`);
  let bytes = 0;
  const parts: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    if (keep) parts.push(decoder.decode(chunk, { stream: true }));
  }
  return { bytes, text: parts.join('') };
}

/** Downloads with curl, in a process of its own (as a reviewer's client would be), counting bytes. */
function curlBytes(url: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{size_download}', '-H', `authorization: Bearer ${token}`, url], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`curl exited ${code}`))));
  });
}

/** `psql \\copy` of `sql`; with `sink`, its output goes straight to /dev/null (as curl's does) and the byte count is `sink`'s. */
function psqlCopy(databaseUrl: string, sql: string, sink?: { bytes: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['-X', '-q', '-d', databaseUrl, '-c', `\\copy (${sql}) to stdout`];
    const child = sink ? spawn('psql', [...args, '-o', '/dev/null'], { stdio: ['ignore', 'ignore', 'inherit'] }) : spawn('psql', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let bytes = 0;
    child.stdout?.on('data', (d: Buffer) => (bytes += d.length));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(sink ? sink.bytes : bytes) : reject(new Error(`psql exited ${code}`))));
  });
}

export async function exportBench(): Promise<void> {
  const count = Number(process.env.BENCH_EVENTS ?? 1_000_000);
  const t = await startTestServer();
  try {
    const db = t.server.app.db;
    const g0 = performance.now();
    await appendGeneratedEvents(db, count, { startAt: new Date('2026-01-01T00:00:00Z') });
    const generatedSeconds = (performance.now() - g0) / 1000;
    await db.query('VACUUM ANALYZE audit_event');
    const [{ first, last }] = await db.query('SELECT min(seq)::int AS first, max(seq)::int AS last FROM audit_event');
    const auditor = t.token(['auditor'], [], 'bench-auditor');
    const rows: Array<Record<string, string | number>> = [];
    const copySql = `SELECT * FROM audit_event WHERE seq BETWEEN ${first} AND ${last} ORDER BY seq`;

    // The floor and the server are timed by the same code: from after the collection to the end of the transfer.
    const measure = async (work: () => Promise<number>): Promise<Measured> => {
      const { value: bytes, seconds, peakGrowthMb } = await withRss(work);
      return { seconds, bytes, peakRssGrowthMb: peakGrowthMb };
    };
    // Warms the cache and counts the bytes; the measured run writes to /dev/null, so that reading its output costs this process nothing.
    const copyBytes = await psqlCopy(t.databaseUrl, copySql);
    // The exported chain verifies (a slice, so the check itself stays quick); this also warms the server's code paths.
    const sample = await download(`${t.url}/audit/export?format=ndjson&to=${encodeURIComponent(new Date(Date.parse('2026-01-01T00:00:00Z') + 50_000).toISOString())}`, auditor, true);
    const verified = verifyExport(sample.text);
    await download(`${t.url}/audit/export?format=csv&to=${encodeURIComponent(new Date(Date.parse('2026-01-01T00:00:00Z') + 50_000).toISOString())}`, auditor);
    const psql = await measure(() => psqlCopy(t.databaseUrl, copySql, { bytes: copyBytes }));
    const row = (what: string, m: Measured, events: number) => ({
      path: what,
      events,
      seconds: m.seconds,
      'rows/s': Math.round(events / m.seconds),
      'MB/s': m.bytes / 1024 ** 2 / m.seconds,
      MB: m.bytes / 1024 ** 2,
      'vs psql (rows/s)': `${(psql.seconds / m.seconds).toFixed(2)}x`,
      'peak RSS growth MB': what.startsWith('psql') ? '- (other process)' : m.peakRssGrowthMb,
    });
    rows.push(row('psql \\copy of the same rows (floor)', psql, last - first + 1));
    for (const format of ['ndjson', 'csv']) {
      const m = await measure(() => curlBytes(`${t.url}/audit/export?format=${format}`, auditor));
      rows.push(row(`GET /audit/export?format=${format}`, m, last - first + 1));
    }
    const filtered = await measure(() => curlBytes(`${t.url}/audit/export?format=ndjson&action=setTrafficSplit`, auditor));
    rows.push(row('GET /audit/export?action=… (1 in 5 shown, rest hash-only)', filtered, last - first + 1));
    printTable(
      `export: ${count} generated audit events (valid chain, generated in ${generatedSeconds.toFixed(1)} s), page ${t.config.auditExportPageRows} rows; ` +
        `server in this process, client curl in its own (as psql is). Targets: >= 0.5x psql, RSS growth <= 100 MB. ` +
        `Sample of ${verified.events} events verifies: ${verified.ok ? 'yes' : `NO (${verified.problem})`}.`,
      rows,
    );
  } finally {
    await t.stop();
  }
}
