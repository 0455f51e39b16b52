import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { TestServer } from './harness';

/** A raw HTTP answer: status, headers, the body as text and, when it parses, as JSON. */
export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** Sends one request and keeps everything a client would see. */
export async function request(url: string, init: RequestInit = {}): Promise<RawResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** POSTs a GraphQL operation to `<url>/graphql` and returns the raw answer. */
export function postGraphql(
  url: string,
  token: string | null,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return request(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: JSON.stringify({ query, variables }),
  });
}

/** POSTs bytes to `<url>/artifacts` as a client uploading a model file would. */
export function uploadArtifact(url: string, token: string | null, bytes: Uint8Array): Promise<RawResponse> {
  return request(`${url}/artifacts`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: bytes,
  });
}

/** Fails when a response body carries a stack trace (frames such as "at f (file.js:1:2)" or a stacktrace field). */
export function assertNoStackTrace(text: string, what = 'response'): void {
  assert.doesNotMatch(text, /stacktrace/i, `${what} carries a stacktrace: ${text.slice(0, 500)}`);
  assert.doesNotMatch(text, /\bat [^\s"]+ \(|\bat (?:\/|file:|node:)[^\s"]+:\d+:\d+/, `${what} carries stack frames: ${text.slice(0, 500)}`);
}

/** A TCP port that was free a moment ago, for child processes that must be told their port. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Per table: how many rows, and a digest of their content, so that any insert, update or delete shows. */
export type DatabaseSnapshot = Record<string, { rows: number; digest: string }>;

/** Every application table of the test server's database, counted and digested. */
export async function snapshotDatabase(t: TestServer): Promise<DatabaseSnapshot> {
  const tables = await t.sql<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migration' ORDER BY table_name`,
  );
  const out: DatabaseSnapshot = {};
  for (const { name } of tables) {
    const [row] = await t.sql<{ rows: number; digest: string }>(
      `SELECT count(*)::int AS rows, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS digest FROM "${name}" x`,
    );
    out[name] = row;
  }
  return out;
}
