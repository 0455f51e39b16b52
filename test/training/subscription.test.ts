import assert from 'node:assert/strict';
import { readdir, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { QUEUES } from '../../src/core/queue/queues';
import { startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;
const CANCEL = `mutation($id: ID!, $reason: String) { cancelTrainingRun(id: $id, reason: $reason) { id status failureReason finishedAt } }`;
const SUBSCRIBE = `subscription($id: ID!) { trainingRunUpdated(id: $id) { id status progress logTail failureReason outputs { version status } } }`;
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

interface RunEvent {
  id: string;
  status: string;
  progress: number;
  logTail: string | null;
  failureReason: string | null;
  outputs: Array<{ version: number; status: string }>;
}

/** One graphql-ws subscription to a run, recording everything the server sends on it. */
interface Watch {
  events: RunEvent[];
  /** Results that carried errors (and whatever data came with them). */
  errored: Array<{ data?: unknown; errors: any[] }>;
  /** What the `error` sink got (a close event or a list of GraphQL errors), if anything. */
  failure: unknown;
  completed: boolean;
  until(what: string, pred: (w: Watch) => boolean, ms?: number): Promise<void>;
  stop(): void;
}

function wsClient(t: TestServer, token: string | null, onClosed?: (code: number) => void): Client {
  return createClient({
    url: t.url.replace(/^http/, 'ws') + '/graphql',
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    on: onClosed ? { closed: (e) => onClosed((e as { code: number }).code) } : undefined,
  });
}

function watchRun(client: Client, id: string): Watch {
  const w: Watch = {
    events: [],
    errored: [],
    failure: undefined,
    completed: false,
    async until(what, pred, ms = 90_000) {
      await eventually(what, async () => (pred(w) ? true : w.completed || w.failure !== undefined ? false : undefined), ms, 50).then((ok) => {
        if (!ok) throw new Error(`${what}: the subscription ended first: ${JSON.stringify({ events: w.events, errored: w.errored, failure: String(w.failure) })}`);
      });
    },
    stop: () => undefined,
  };
  w.stop = client.subscribe<{ trainingRunUpdated: RunEvent }>(
    { query: SUBSCRIBE, variables: { id } },
    {
      next: (r) => {
        if (r.errors?.length) w.errored.push({ data: r.data, errors: r.errors as any[] });
        else if (r.data?.trainingRunUpdated) w.events.push(r.data.trainingRunUpdated);
        else w.errored.push({ data: r.data, errors: [] });
      },
      error: (e) => (w.failure = e ?? 'error'),
      complete: () => (w.completed = true),
    },
  );
  return w;
}

/** Pids of the processes whose working directory is `dir` (what /proc lets this user read). */
async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = await readlink(`/proc/${entry}/cwd`);
      if (cwd === dir) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or another user's
    }
  }
  return pids;
}

describe('training run updates over graphql-ws', () => {
  let t: TestServer;
  let engineer: string;
  let model: string;
  let dataset: string;
  let inputs: { codeVersion: string; environment: string };
  const clients: Client[] = [];
  const trainerPids = new Set<number>();

  before(async () => {
    t = await startTestServer({ demo: true });
    engineer = t.token(['ml-engineer'], ['fraud'], 'sub-engineer');
    const m = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    assert.equal(m.errors, undefined, JSON.stringify(m.errors));
    model = m.data.models.nodes[0].id;
    dataset = await storedDatasetVersion(t, engineer, { team: 'fraud', name: 'subscription-data' });
    inputs = await trainerInputs(t, engineer, 'fraud');
  });
  after(async () => {
    for (const c of clients) await c.dispose();
    // A test that failed half-way must not leave a trainer running (nor the server waiting on it).
    for (const pid of trainerPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await t?.stop();
  });

  const client = (token: string | null, onClosed?: (code: number) => void) => {
    const c = wsClient(t, token, onClosed);
    clients.push(c);
    return c;
  };

  const start = async (config: Record<string, unknown>): Promise<string> => {
    const r = await t.gql(engineer, START, {
      i: {
        model,
        name: 'subscribed',
        datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
        codeVersion: inputs.codeVersion,
        environment: inputs.environment,
        configContent: config,
        seeds: { split: 7, init: 42, shuffle: 3 },
      },
    });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.equal(r.data.startTrainingRun.status, 'QUEUED');
    return r.data.startTrainingRun.id;
  };

  // About 3 s of training: progress is written at most every 500 ms, so a shorter run shows no intermediate step.
  it('streams a run from RUNNING, with rising progress and its log, to SUCCEEDED with its model version', async () => {
    const id = await start({ model: 'mlp', hidden: [64, 64], epochs: 300, lr: 0.1 });
    const w = watchRun(client(engineer), id);
    await w.until('a SUCCEEDED event', (x) => x.events.some((e) => e.status === 'SUCCEEDED'), 120_000);
    w.stop();

    assert.deepEqual(w.errored, [], 'no event carried errors');
    assert.ok(w.events.every((e) => e.id === id), 'every event is about the subscribed run');
    const running = w.events.filter((e) => e.status === 'RUNNING');
    assert.ok(running.length >= 2, `several RUNNING updates: ${JSON.stringify(w.events.map((e) => [e.status, e.progress]))}`);
    const progress = running.map((e) => e.progress);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], `progress never goes back: ${progress.join(', ')}`);
    assert.ok(progress.some((p) => p > 0 && p < 1), `some intermediate progress: ${progress.join(', ')}`);
    assert.ok(running.some((e) => typeof e.logTail === 'string' && e.logTail.length > 0), 'the log tail is streamed while running');
    assert.ok(running.every((e) => e.outputs.length === 0), 'no model version before the run succeeds');
    // Nothing comes before RUNNING but (possibly) QUEUED, and nothing unexpected at all.
    assert.deepEqual([...new Set(w.events.map((e) => e.status))].filter((s) => !['QUEUED', 'RUNNING', 'SUCCEEDED'].includes(s)), []);

    const done = w.events.find((e) => e.status === 'SUCCEEDED')!;
    assert.equal(done.progress, 1);
    assert.equal(done.failureReason, null);
    assert.ok(done.logTail && done.logTail.length > 0);
    assert.equal(done.outputs.length, 1, `the SUCCEEDED event lists the version the run produced: ${JSON.stringify(done.outputs)}`);
    assert.equal(typeof done.outputs[0].version, 'number');
    assert.ok(['CANDIDATE', 'REJECTED'].includes(done.outputs[0].status), done.outputs[0].status);
    // The stream agrees with a plain read of the run.
    const polled = await waitForRun(t, engineer, id);
    assert.equal(polled.status, 'SUCCEEDED');
    assert.equal(polled.outputs[0].version, done.outputs[0].version);
  });

  it('refuses the run to a viewer of another team, leaking nothing, while its owner sees it', async () => {
    const id = await start({ model: 'mlp', hidden: [64, 64], epochs: 300, lr: 0.1 });
    const visionViewer = t.token(['viewer'], ['vision'], 'sub-vision-viewer');
    const own = watchRun(client(engineer), id);
    const other = watchRun(client(visionViewer), id);
    await other.until('the refusal', (x) => x.errored.length > 0 || x.events.length > 0 || x.failure !== undefined || x.completed, 30_000).catch(() => undefined);
    await own.until('a SUCCEEDED event for the owner', (x) => x.events.some((e) => e.status === 'SUCCEEDED'), 120_000);
    own.stop();

    assert.deepEqual(other.events, [], 'the other team saw no event of the run');
    // graphql-ws answers a failed subscribe with one result carrying errors (then completes), or
    // through its error sink: either way it must be one error, no data.
    const errors: any[] = other.errored.length ? other.errored.flatMap((r) => r.errors) : Array.isArray(other.failure) ? other.failure : [];
    assert.equal(errors.length, 1, JSON.stringify({ errored: other.errored, failure: other.failure }));
    assert.equal(errors[0].extensions?.code, 'NOT_FOUND', 'the run is hidden from the other team, not merely forbidden: ' + JSON.stringify(errors[0]));
    for (const r of other.errored) assert.ok(r.data === undefined || r.data === null, `no data alongside the error: ${JSON.stringify(r.data)}`);
    const text = JSON.stringify({ errored: other.errored, failure: other.failure });
    assert.ok(!text.includes(uuidOf(id)), 'the run row id is not echoed back except in its opaque form');
    for (const leak of ['subscribed', 'RUNNING', 'SUCCEEDED', 'fraud', 'logTail', 'progress']) assert.ok(!text.includes(leak), `nothing of the run leaks (${leak}): ${text}`);
    // Still nothing after the run finished and published its last events.
    assert.deepEqual(other.events, []);
    other.stop();
  });

  it('ends the socket (4401) of a subscriber whose key was revoked mid-stream, and sends it nothing more', async () => {
    const admin = t.token(['admin'], ['fraud']);
    const created = await t.gql(admin, 'mutation { createApiKey(input: { name: "dashboard", roles: ["ml-engineer"], teams: ["fraud"] }) { key apiKey { id } } }');
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    const { key, apiKey } = created.data.createApiKey;
    const keyClient = createClient({ url: t.url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, connectionParams: { authorization: `ApiKey ${key}` }, retryAttempts: 0 });
    clients.push(keyClient);
    const id = await start({ model: 'mlp', hidden: [64, 64], epochs: 400, lr: 0.1 });
    const w = watchRun(keyClient, id);
    await w.until('a RUNNING event', (x) => x.events.some((e) => e.status === 'RUNNING'), 60_000);
    const revoked = await t.gql(admin, 'mutation($id: ID!) { revokeApiKey(input: { apiKey: $id }) { revokedAt } }', { id: apiKey.id });
    assert.equal(revoked.errors, undefined, JSON.stringify(revoked.errors));
    const seenBefore = w.events.length;
    await w.until('the server to close the socket', (x) => x.failure !== undefined, 30_000);
    assert.equal((w.failure as { code?: number }).code, 4401, String(w.failure));
    await waitForRun(t, engineer, id, 120_000);
    w.stop();
    assert.deepEqual(w.errored, [], 'no refused events: the subscription ended instead');
    // An event already in flight when the key was revoked may arrive; nothing after the close does.
    assert.ok(w.events.length <= seenBefore + 1, `events after revocation: ${w.events.length - seenBefore}`);
    assert.ok(!w.events.some((e) => e.status === 'SUCCEEDED'), 'the end of the run was not sent to the revoked key');
  });

  it('closes an anonymous socket with 4403 before it can subscribe', async () => {
    const id = await start({ model: 'logistic_regression', epochs: 5 });
    let closedWith: number | undefined;
    const w = watchRun(client(null, (code) => (closedWith = code)), id);
    await w.until('the socket to close', (x) => x.failure !== undefined || x.completed, 15_000).catch(() => undefined);
    assert.deepEqual(w.events, []);
    assert.deepEqual(w.errored, []);
    assert.equal(w.completed, false);
    assert.equal((w.failure as { code?: number } | undefined)?.code, 4403, String(w.failure));
    assert.equal(closedWith, 4403);
    await waitForRun(t, engineer, id);
  });

  it('cancels a running run: the subscriber sees CANCELLED, the trainer is killed, no version is registered, a second cancel conflicts', async () => {
    const id = await start({ model: 'mlp', hidden: [64, 64], epochs: 20000 });
    const runUuid = uuidOf(id);
    const w = watchRun(client(engineer), id);
    await w.until('training progress', (x) => x.events.some((e) => e.status === 'RUNNING' && e.progress > 0.05), 60_000);

    const workDir = path.join(t.config.dataDir, 'runs', runUuid, 'execution-1');
    const realWorkDir = await realpath(workDir);
    const before = await eventually('the trainer process', async () => {
      const pids = await processesIn(realWorkDir);
      return pids.length ? pids : undefined;
    }, 15_000, 100);
    for (const pid of before) trainerPids.add(pid);

    const cancelled = await t.gql(engineer, CANCEL, { id, reason: 'superseded by a better config' });
    assert.equal(cancelled.errors, undefined, JSON.stringify(cancelled.errors));
    assert.equal(cancelled.data.cancelTrainingRun.status, 'CANCELLED');
    assert.equal(cancelled.data.cancelTrainingRun.failureReason, 'superseded by a better config');
    assert.ok(cancelled.data.cancelTrainingRun.finishedAt);

    await w.until('a CANCELLED event', (x) => x.events.some((e) => e.status === 'CANCELLED'), 30_000);
    const seen = w.events.find((e) => e.status === 'CANCELLED')!;
    assert.equal(seen.failureReason, 'superseded by a better config');
    assert.deepEqual(seen.outputs, []);

    // The process (its whole group) is killed: nothing runs in the work directory any more.
    await eventually('the trainer to be gone', async () => ((await processesIn(realWorkDir)).length === 0 ? true : undefined), 15_000, 100);
    for (const pid of before) {
      // Killed with its group, the trainer is reaped by whoever inherits it (the group's leader died with it).
      await eventually(`trainer pid ${pid} to be gone`, async () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === 'ESRCH' ? true : undefined;
        }
      }, 15_000, 100);
      trainerPids.delete(pid);
    }
    // Once the worker has wound the job up (it records the last log lines), the run must still read CANCELLED.
    const queue = t.server.app.queues!.get(QUEUES.training);
    await eventually('the training job to end', async () => {
      const state = await (await queue.getJob(runUuid))?.getState();
      return state === 'completed' || state === 'failed' ? true : undefined;
    }, 30_000);
    const [row] = await t.sql(`SELECT status, failure_reason, progress FROM training_run WHERE id = $1`, [runUuid]);
    assert.equal(row.status, 'CANCELLED');
    assert.equal(row.failure_reason, 'superseded by a better config');
    assert.ok(Number(row.progress) < 1, `progress stopped short of 1: ${row.progress}`);
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [runUuid]);
    assert.equal(n, 0, 'no model version for a cancelled run');
    const read = await waitForRun(t, engineer, id, 5_000);
    assert.equal(read.status, 'CANCELLED');
    assert.deepEqual(read.outputs, []);
    assert.ok(w.events.slice(w.events.indexOf(seen)).every((e) => e.status === 'CANCELLED'), 'no status after CANCELLED but CANCELLED');

    const again = await t.gql(engineer, CANCEL, { id, reason: 'twice' });
    assert.equal(again.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(again));
    assert.equal(again.errors?.[0].extensions.reason, 'TRAINING_RUN_FINISHED');
    assert.equal(again.data?.cancelTrainingRun ?? null, null);

    const events = await t.sql(`SELECT actor_id, decision, reason, before, after FROM audit_event WHERE action = 'cancelTrainingRun' AND subject_id = $1`, [id]);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0].actor_id, 'sub-engineer');
    assert.equal(events[0].decision, 'ALLOWED');
    assert.equal(events[0].reason, 'superseded by a better config');
    assert.deepEqual(events[0].before, { status: 'RUNNING' });
    assert.deepEqual(events[0].after, { status: 'CANCELLED' });
    w.stop();
  });
});
