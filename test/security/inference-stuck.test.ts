import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signToken } from '../../src/access/authenticate';
import { databaseUrlFor, dropDatabase, JWT_SECRET, removeRedisKeys, startTestServer, TEST_REDIS_URL, testDatabaseName, testRedisPrefix, type GqlResult, type TestServer } from '../support/harness';
import { PREDICT, registerOnnx } from '../support/inference';
import { buildLoopOnnx } from '../support/onnx-models';
import { eventually } from '../support/processes';

// The models here spin in a Loop whose trip count comes from their inputs: all-zero rows (the
// warm-up, and the "light" requests) run at once, rows of ones run for as long as the model says.
const HEAVY = [1, 1, 1, 1];
const LIGHT = [0, 0, 0, 0];
// Never returns (days of iterations): the run can only be abandoned, its thread stuck for good.
const FOREVER = 1e12;
// About 2 s for a row of ones on one core of the machine this was written on (1.35 s on a faster one).
const SECONDS = 400_000;

const SERVING = `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role weight state error } } } }`;
type Serving = { modelVersionId: string; role: string; weight: number; state: string; error: string | null };
const SPLIT = `mutation($d: ID!, $split: [TrafficShareInput!]!) { setTrafficSplit(input: { deployment: $d, trafficSplit: $split }) { id } }`;

interface Pools {
  status: string;
  reasons?: string[];
  inference?: { pools: Record<'production' | 'shared', { live: number; stuck: number; running: number }> };
}

/** What the first suite needs of a server, in a process or in this one. */
type Api = Pick<TestServer, 'url' | 'token' | 'gql'>;

const MAIN = path.resolve(__dirname, '../../src/main.js');

/**
 * The server in a process of its own, with the demo seeded: a thread stuck in a native run keeps
 * its process from exiting, so the process that gets stuck threads must not be the test's own.
 * `stop` sends SIGTERM and resolves with how the process ended.
 */
async function startServerProcess(env: Record<string, string>): Promise<Api & { stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const dbName = testDatabaseName('stuck');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-test-'));
  const redisUrl = TEST_REDIS_URL;
  const redisPrefix = testRedisPrefix(dbName);
  const child: ChildProcess = spawn(process.execPath, [MAIN], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: dataDir,
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrlFor(dbName),
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      AUTH_JWT_SECRET: JWT_SECRET,
      DATA_DIR: dataDir,
      SECRETS_DIR: `${dataDir}-secrets`,
      LOG_LEVEL: 'silent',
      SEED_DEMO: 'true',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await eventually('the server process listening', async () => {
    if (child.exitCode !== null) throw new Error(`the server process exited: ${stderr}`);
    return /serving (http:\/\/\S+)\/graphql/.exec(stdout)?.[1];
  }, 180_000);
  await eventually('the server process ready', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined), 120_000);
  return {
    url,
    token: (roles, teams, sub = `test-${roles.join('+')}`) => signToken(JWT_SECRET, { sub, roles, teams }),
    async gql(token, query, variables) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { ...((await res.json()) as GqlResult), status: res.status };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // Bounded, so that a process that cannot end fails the test instead of hanging it.
      const ended = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);
      if (!ended) child.kill('SIGKILL');
      const how = ended ?? (await exited);
      await removeRedisKeys(redisUrl, redisPrefix);
      await dropDatabase(dbName);
      await rm(dataDir, { recursive: true, force: true });
      await rm(`${dataDir}-secrets`, { recursive: true, force: true });
      if (!ended) throw new Error('the server process did not end within 60 s of SIGTERM');
      return how;
    },
  };
}

async function demoIds(t: Api) {
  const r = await t.gql(t.token(['admin'], []), `{
    fraudModel: models(filter: { name: "fraud-detector" }) { nodes { id } }
    fraudStaging: deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id } }
    fraudProduction: deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } }
    visionStaging: deployments(filter: { team: "vision", environment: STAGING }) { nodes { id trafficSplit { weight modelVersion { id } } } }
    visionProduction: deployments(filter: { team: "vision", environment: PRODUCTION }) { nodes { id trafficSplit { modelVersion { id } } } }
  }`);
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  const visionStagingSplit = r.data.visionStaging.nodes[0].trafficSplit as Array<{ weight: number; modelVersion: { id: string } }>;
  return {
    fraudModel: r.data.fraudModel.nodes[0].id as string,
    fraudStaging: r.data.fraudStaging.nodes[0].id as string,
    fraudProduction: r.data.fraudProduction.nodes[0].id as string,
    visionStaging: r.data.visionStaging.nodes[0].id as string,
    visionProduction: r.data.visionProduction.nodes[0].id as string,
    visionV1: r.data.visionProduction.nodes[0].trafficSplit[0].modelVersion.id as string,
    visionV2: visionStagingSplit.find((s) => s.weight === 10)!.modelVersion.id,
  };
}

describe('inference pool: a never-returning model on STAGING cannot freeze the instance', () => {
  let t: Awaited<ReturnType<typeof startServerProcess>>;
  let ids: Awaited<ReturnType<typeof demoIds>>;
  let fraudEngineer: string;
  let fraudService: string;
  let visionService: string;
  let operator: string;

  const servingOf = async (d: string): Promise<Serving[]> => {
    const r = await t.gql(fraudEngineer, SERVING, { d });
    return r.data?.node?.serving ?? [];
  };
  const readyz = async () => {
    const res = await fetch(`${t.url}/readyz`, { headers: { authorization: `Bearer ${operator}` } });
    return { status: res.status, body: (await res.json()) as Pools };
  };
  const predict = (token: string, d: string, row: number[], key?: string) => t.gql(token, PREDICT, { d, inputs: { features: [row] }, key });
  const route = async (v: string) => {
    const r = await t.gql(fraudEngineer, SPLIT, { d: ids.fraudStaging, split: [{ modelVersion: v, weight: 100 }] });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  };
  const loaded = (v: string) =>
    eventually(`version ${v} loaded on fraud's STAGING`, async () => ((await servingOf(ids.fraudStaging)).some((s) => s.modelVersionId === v && s.state === 'LOADED') ? true : undefined), 60_000);

  /** Alternates heavy and light requests on fraud's STAGING until `v` is out of the shared pool or the pool has no live thread. */
  const attack = async (v: string, deadlineMs: number) => {
    const seen = { heavy: 0, lightAnswered: 0, state: '', error: '' as string | null };
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      await predict(fraudService, ids.fraudStaging, HEAVY);
      seen.heavy += 1;
      const light = await predict(fraudService, ids.fraudStaging, LIGHT);
      if (!light.errors && light.data.predict.modelVersionId === v) seen.lightAnswered += 1;
      const entry = (await servingOf(ids.fraudStaging)).find((s) => s.modelVersionId === v);
      Object.assign(seen, { state: entry?.state ?? '', error: entry?.error ?? null });
      if (entry?.state !== 'LOADED') break;
      if ((await readyz()).body.inference?.pools.shared.live === 0) break;
    }
    return seen;
  };

  before(async () => {
    t = await startServerProcess({
        INFERENCE_THREADS: '2',
        INFERENCE_PRODUCTION_THREADS: '1',
        INFERENCE_TIMEOUT_MS: '2000',
        INFERENCE_RUN_BUDGET_MS: '300',
        INFERENCE_RUN_STUCK_MS: '3000',
        INFERENCE_BUDGET_OVERRUNS: '2',
        INFERENCE_BUDGET_COOLDOWN_MS: '600000',
        INFERENCE_RATE_LIMIT_PER_SECOND: '1000000',
        INFERENCE_RECONCILE_MS: '1000',
    });
    fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'erin');
    fraudService = t.token(['service'], ['fraud'], 'fraud-svc');
    visionService = t.token(['service'], ['vision'], 'vision-svc');
    operator = t.token(['auditor'], [], 'olga-operator');
    ids = await demoIds(t);
  });
  after(async () => {
    await t?.stop();
  });

  it('unloads the model from the shared pool despite light requests in between, and another team keeps its STAGING service', async () => {
    const spinner = await registerOnnx(t, fraudEngineer, ids.fraudModel, buildLoopOnnx(FOREVER));
    await route(spinner);
    await loaded(spinner);
    const warm = await predict(fraudService, ids.fraudStaging, LIGHT);
    assert.equal(warm.errors, undefined, JSON.stringify(warm.errors));

    const seen = await attack(spinner, 60_000);
    assert.equal(seen.state, 'UNLOADED', `after ${seen.heavy} heavy requests: ${JSON.stringify(seen)}`);
    assert.match(seen.error!, /unloaded from the shared pool/);
    assert.ok(seen.lightAnswered >= 1, 'light requests were answered between the heavy ones');

    const vision = await predict(visionService, ids.visionStaging, [0.1, 0.2, 0.3]);
    assert.equal(vision.errors, undefined, JSON.stringify(vision.errors));
    const ready = await readyz();
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
  });

  it('reports the shared pool not ready once stuck threads leave it no live thread, with a gauge of stuck threads', async () => {
    // Each new version of the spinner costs the attacker another thread, until none is live.
    for (let i = 2; i <= 4 && (await readyz()).body.inference!.pools.shared.live > 0; i++) {
      const next = await registerOnnx(t, fraudEngineer, ids.fraudModel, buildLoopOnnx(FOREVER * i));
      await route(next);
      await loaded(next);
      await attack(next, 60_000);
    }
    const ready = await eventually('the stuck pool reported', async () => {
      const r = await readyz();
      return r.status === 503 && r.body.inference!.pools.shared.stuck >= 2 ? r : undefined;
    }, 30_000);
    assert.equal(ready.body.status, 'not ready');
    assert.ok(
      ready.body.reasons!.some((r) => /the shared pool has no live thread: \d+ threads are stuck in model runs that cannot be stopped; replace this process/.test(r)),
      JSON.stringify(ready.body.reasons),
    );
    assert.deepEqual({ live: ready.body.inference!.pools.production.live, stuck: ready.body.inference!.pools.production.stuck }, { live: 1, stuck: 0 });

    const metrics = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${operator}` } }).then((r) => r.text());
    const stuck = Number(/^modelgov_inference_threads_stuck\{pool="shared"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(stuck >= 2, metrics.split('\n').filter((l) => l.includes('stuck')).join('\n'));
    assert.match(metrics, /^modelgov_inference_threads_stuck\{pool="production"\} 0$/m);
  });

  it('still applies a PRODUCTION traffic change while the shared pool has no live thread, and fails the shared load with a reason', async () => {
    // A version for the dead pool: its load cannot get a thread.
    const late = await registerOnnx(t, fraudEngineer, ids.fraudModel, buildLoopOnnx(SECONDS));
    await route(late);
    // vision's second version is approved and takes half of its PRODUCTION traffic.
    const visionEngineer = t.token(['ml-engineer'], ['vision'], 'vera');
    await t.gql(visionEngineer, `mutation($v: ID!) { submitModelVersion(modelVersion: $v) { status } }`, { v: ids.visionV2 });
    const approved = await t.gql(t.token(['reviewer'], ['vision'], 'rex-reviewer'), `mutation($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "holdout checked" }) { status } }`, { v: ids.visionV2 });
    assert.equal(approved.errors, undefined, JSON.stringify(approved.errors));
    const split = await t.gql(visionEngineer, SPLIT, {
      d: ids.visionProduction,
      split: [
        { modelVersion: ids.visionV1, weight: 50 },
        { modelVersion: ids.visionV2, weight: 50 },
      ],
    });
    assert.equal(split.errors, undefined, JSON.stringify(split.errors));

    const production = await eventually('the PRODUCTION split served', async () => {
      const s = await servingOf(ids.visionProduction);
      return s.find((x) => x.modelVersionId === ids.visionV2 && x.state === 'LOADED') ? s : undefined;
    }, 60_000);
    assert.deepEqual(
      production.filter((s) => s.role === 'TRAFFIC').map((s) => [s.modelVersionId, s.weight, s.state]).sort(),
      [
        [ids.visionV1, 50, 'LOADED'],
        [ids.visionV2, 50, 'LOADED'],
      ].sort(),
    );
    const failed = await eventually('the shared load failed', async () => (await servingOf(ids.fraudStaging)).find((s) => s.modelVersionId === late && s.state === 'FAILED'), 60_000);
    assert.match(failed.error!, /no live inference thread in the shared pool: \d+ threads are stuck/);

    const answeredBy = new Set<string>();
    for (let i = 0; i < 40 && answeredBy.size < 2; i++) {
      const r = await predict(visionService, ids.visionProduction, [0.5, 0.5, 0.5], `customer-${i}`);
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      answeredBy.add(r.data.predict.modelVersionId);
    }
    assert.deepEqual([...answeredBy].sort(), [ids.visionV1, ids.visionV2].sort());
  });

  it('ends its process on SIGTERM although threads are stuck in runs', async () => {
    const ended = await t.stop();
    t = undefined as never;
    // Node waits for worker threads on exit: the process kills itself rather than hang.
    assert.deepEqual(ended, { code: null, signal: 'SIGKILL' });
  });
});

/** A failed prediction's errors, with the reason its log entry gives (the answer only names the kind of failure). */
async function whyFailed(t: TestServer, r: GqlResult): Promise<string> {
  const requestId = (r.errors?.[0]?.extensions as { requestId?: string } | undefined)?.requestId;
  const logged = await eventually('the failed prediction logged', async () => (await t.sql(`SELECT error FROM prediction_log WHERE request_id = $1`, [requestId]))[0] as { error: string } | undefined, 10_000).catch(() => undefined);
  return `${JSON.stringify(r.errors)}; logged: ${logged?.error ?? '(no log entry)'}`;
}

describe('inference pool: STAGING traffic cannot take the PRODUCTION copy of a version offline', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: {
        INFERENCE_THREADS: '1',
        INFERENCE_PRODUCTION_THREADS: '1',
        // Wide margins on a busy machine: a light run has 800 ms, a legitimate large batch 40 times
        // what it needs; a heavy row (twice the model's usual trips) needs several times its budget.
        INFERENCE_TIMEOUT_MS: '30000',
        INFERENCE_RUN_BUDGET_MS: '800',
        INFERENCE_RUN_BUDGET_PER_ROW_US: '20000',
        INFERENCE_RUN_STUCK_MS: '120000',
        INFERENCE_BUDGET_OVERRUNS: '3',
        INFERENCE_BUDGET_COOLDOWN_MS: '600000',
        INFERENCE_RATE_LIMIT_PER_SECOND: '1000000',
      },
    });
  });
  after(async () => {
    await t?.stop();
  });

  it('counts large batches within their per-row allowance as no overrun, unloads the version from the shared pool only, and PRODUCTION keeps answering with it', async () => {
    const ids = await demoIds(t);
    const fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'erin');
    const fraudService = t.token(['service'], ['fraud'], 'fraud-svc');
    const servingOf = async (d: string): Promise<Serving[]> => (await t.gql(fraudEngineer, SERVING, { d })).data?.node?.serving ?? [];
    const slow = await registerOnnx(t, fraudEngineer, ids.fraudModel, buildLoopOnnx(2 * SECONDS));
    await t.gql(fraudEngineer, `mutation($v: ID!) { submitModelVersion(modelVersion: $v) { status } }`, { v: slow });
    const approved = await t.gql(t.token(['reviewer'], ['fraud'], 'rob-reviewer'), `mutation($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "holdout checked" }) { status } }`, { v: slow });
    assert.equal(approved.errors, undefined, JSON.stringify(approved.errors));
    for (const d of [ids.fraudStaging, ids.fraudProduction]) {
      const r = await t.gql(fraudEngineer, SPLIT, { d, split: [{ modelVersion: slow, weight: 100 }] });
      if (r.errors) assert.fail(await whyFailed(t, r));
    }
    await t.server.app.inference!.reconcile();

    // Legitimate large batches: half the trips of a heavy row (1.3 ms a row here, about 4 on a slow
    // machine), past the 800 ms base but well within the 20 ms a row allowance. Three of them counted
    // as overruns would unload the version.
    for (let i = 0; i < 3; i++) {
      const rows = Array.from({ length: 1000 }, () => [5e-4, 5e-4, 5e-4, 5e-4]);
      const r = await t.gql(fraudService, PREDICT, { d: ids.fraudStaging, inputs: { features: rows } });
      if (r.errors) assert.fail(await whyFailed(t, r));
      assert.equal(r.data.predict.modelVersionId, slow);
    }
    assert.equal((await servingOf(ids.fraudStaging)).find((s) => s.modelVersionId === slow)?.state, 'LOADED');

    // Small heavy requests on STAGING only, until the breaker unloads it there.
    const deadline = Date.now() + 120_000;
    let staging: Serving | undefined;
    for (let sent = 0; Date.now() < deadline; sent++) {
      await t.gql(fraudService, PREDICT, { d: ids.fraudStaging, inputs: { features: [HEAVY] } });
      staging = (await servingOf(ids.fraudStaging)).find((s) => s.modelVersionId === slow);
      if (staging?.state !== 'LOADED') break;
    }
    assert.equal(staging?.state, 'UNLOADED', JSON.stringify(staging));
    assert.match(staging!.error!, /3 runs within 10 min took longer than the run budget .*unloaded from the shared pool/);

    const production = (await servingOf(ids.fraudProduction)).find((s) => s.modelVersionId === slow);
    assert.deepEqual({ state: production?.state, error: production?.error }, { state: 'LOADED', error: null });
    for (let i = 0; i < 5; i++) {
      const r = await t.gql(fraudService, PREDICT, { d: ids.fraudProduction, inputs: { features: [LIGHT] } });
      if (r.errors) assert.fail(await whyFailed(t, r));
      assert.deepEqual({ version: r.data.predict.modelVersionId, fallback: r.data.predict.fallback }, { version: slow, fallback: false });
    }

    // The alert names the STAGING deployment, whose traffic ran on the shared pool, and not PRODUCTION.
    const alerts = await eventually('the run budget alert', async () => {
      const r = await t.sql(`SELECT deployment_id, details FROM alert WHERE kind = 'RUN_BUDGET'`);
      return r.length ? r : undefined;
    }, 30_000);
    const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
    assert.deepEqual(alerts.map((a) => [a.deployment_id, a.details.pool]), [[uuidOf(ids.fraudStaging), 'shared']]);
  });
});
