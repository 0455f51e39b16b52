// Real receivers for notification tests: an HTTP server that records what it is sent, the
// Standard Webhooks check a receiver makes, and an SMTP server that keeps the messages.
import assert from 'node:assert/strict';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { expectId } from '../../src/core/global-id';
import { dataOf } from './access';
import type { TestServer } from './harness';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 that records what it gets and answers with `answer`. */
export async function receiver(answer: (res: http.ServerResponse) => void = (res) => res.end('ok')) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      answer(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** The Standard Webhooks check a receiver does (the README's recipe). */
export function verifies(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`).digest();
  return String(headers['webhook-signature'])
    .split(' ')
    .some((s) => {
      const [version, sig] = s.split(',');
      const given = Buffer.from(sig ?? '', 'base64');
      return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

export interface Mail {
  from: string;
  to: string[];
  user: string | undefined;
  raw: string;
}

/** A local SMTP server (no TLS, authentication optional) that keeps what it is sent. */
export async function smtpServer(credentials: { user: string; pass: string }) {
  const got: Mail[] = [];
  const logins: Array<{ user: string; pass: string }> = [];
  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      logins.push({ user: auth.username ?? '', pass: auth.password ?? '' });
      if (auth.username === credentials.user && auth.password === credentials.pass) cb(null, { user: auth.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        got.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as AddressInfo).port;
  return { got, logins, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}


/**
 * A DEVELOPMENT deployment of the fraud team serving `version` alone, with a p95 latency objective of
 * 20 ms judged from 5 requests: its global ID.
 */
export async function deployWithLatencySlo(t: TestServer, token: string, version: string, name: string): Promise<string> {
  const r = await t.gql(token, `mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: DEVELOPMENT, slos: { p95LatencyMs: 20 }, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: version, n: name });
  const d = dataOf(r, 'deploy').createDeployment.id as string;
  dataOf(await t.gql(token, `mutation($d: ID!) { setDeploymentMonitoring(input: { deployment: $d, minRequests: 5, cooldownSeconds: 3600 }) { monitoring } }`, { d }), 'monitoring');
  return d;
}

/**
 * The LATENCY alert a monitor pass opens on `deployment` after 8 requests of `ms` each half an hour
 * ago, answered by `version` (p95 = ms: WARNING above 20, CRITICAL above 40): its global ID.
 */
export async function openLatencyAlert(t: TestServer, token: string, deployment: string, version: string, ms: number): Promise<string> {
  const deploymentId = expectId(deployment, 'Deployment');
  const [{ team_id: teamId }] = await t.sql(`SELECT team_id FROM deployment WHERE id = $1`, [deploymentId]);
  const log = t.server.app.inference!.log;
  for (let i = 0; i < 8; i++) {
    await log.append({
      id: randomUUID(), occurredAt: new Date(Date.now() - 1_800_000), deploymentId, teamId, modelVersionId: expectId(version, 'ModelVersion'),
      requestId: `logged-${randomUUID()}`, requestKey: null, principalId: 'svc', principalKind: 'user', source: 'graphql', rows: 1, inputs: null,
      inputsSha256: 'not kept', outputs: { probability: [[0.5]] }, latencyMs: ms, fallback: false, shadow: false, failedVersionId: null, error: null,
    });
  }
  await log.flush(true);
  dataOf(await t.gql(token, `mutation($d: ID!) { runMonitor(deployment: $d, windowSeconds: 3600) { alertsRaised } }`, { d: deployment }), 'runMonitor');
  const alerts = dataOf(await t.gql(token, `query($d: ID!) { alerts(filter: { deployment: $d, kinds: [LATENCY] }) { nodes { id severity } } }`, { d: deployment }), 'alerts').alerts.nodes;
  assert.equal(alerts.length, 1, JSON.stringify(alerts));
  assert.equal(alerts[0].severity, ms > 40 ? 'CRITICAL' : 'WARNING');
  return alerts[0].id as string;
}
