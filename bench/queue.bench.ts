import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fromGlobalId } from '../src/core/global-id';
import { QUEUES } from '../src/core/queue/queues';
import { startTestServer, type TestServer } from '../test/support/harness';
import { storedDatasetVersion } from '../test/support/training';
import { percentile, printTable } from './stats';

const REPOSITORY = 'https://bench.invalid/noop';
const TEAM = 'queue-bench';
const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;
const FINAL = `('SUCCEEDED', 'FAILED', 'CANCELLED')`;
// Exit 2 is the trainer refusing its input: the run fails at once and the job is not retried.
// Before refusing, it appends its run id to `executions` (one short O_APPEND write, whole even when
// executions overlap): the trainer's own record of how often each run was executed, independent of
// what the server counts.
const noopTrainer = (executions: string) =>
  `require('node:fs').appendFileSync(${JSON.stringify(executions)}, process.env.MODELGOV_RUN_ID + '\\n');\n` +
  `process.stderr.write('noop trainer: refusing input (queue bench)\\n');\nprocess.exitCode = 2;\n`;

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms: number, everyMs: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`queue bench: gave up after ${ms / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function pool(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
}

const stats = (sorted: number[]) => ({
  p50: percentile(sorted, 50),
  p95: percentile(sorted, 95),
  p99: percentile(sorted, 99),
  max: sorted[sorted.length - 1],
});

interface Setup {
  admin: string;
  input: (name: string) => Record<string, unknown>;
}

async function setUp(t: TestServer): Promise<Setup> {
  const admin = t.token(['admin'], [TEAM], 'queue-bench-admin');
  const ok = (r: { errors?: unknown }, what: string) => assert.equal(r.errors, undefined, `${what}: ${JSON.stringify(r.errors)}`);
  ok(await t.gql(admin, 'mutation($i: CreateTeamInput!) { createTeam(input: $i) { id } }', { i: { name: TEAM } }), 'createTeam');
  const model = await t.gql(admin, 'mutation($i: CreateModelInput!) { createModel(input: $i) { id } }', { i: { team: TEAM, name: 'noop-model' } });
  ok(model, 'createModel');
  const dataset = await storedDatasetVersion(t, admin, { team: TEAM, name: 'queue-bench-data', rows: 50 });
  const inputs = await t.gql(
    admin,
    `mutation($c: RegisterCodeVersionInput!, $e: RegisterEnvironmentInput!) { registerCodeVersion(input: $c) { id } registerEnvironment(input: $e) { id } }`,
    {
      c: { team: TEAM, repositoryUrl: REPOSITORY, commitSha: 'c'.repeat(40), branch: 'main', dirty: false, entrypoint: 'noop.js' },
      e: { team: TEAM, runtime: `node ${process.version}`, lockfileSha256: 'd'.repeat(64), hardware: 'cpu' },
    },
  );
  ok(inputs, 'registerCodeVersion/registerEnvironment');
  return {
    admin,
    input: (name) => ({
      model: model.data.createModel.id,
      name,
      datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
      codeVersion: inputs.data.registerCodeVersion.id,
      environment: inputs.data.registerEnvironment.id,
      configContent: { model: 'logistic_regression' },
      seeds: { split: 1 },
    }),
  };
}

// answeredAt is epoch ms with sub-millisecond precision: the database runs on this host, so its
// timestamps and this clock can be subtracted.
async function startRun(t: TestServer, s: Setup, name: string): Promise<{ uuid: string; ms: number; answeredAt: number }> {
  const t0 = performance.now();
  const r = await t.gql(s.admin, START, { i: s.input(name) });
  const t1 = performance.now();
  if (r.errors || !r.data?.startTrainingRun) throw new Error(`startTrainingRun refused (HTTP ${r.status}): ${JSON.stringify(r.errors)}`);
  return { uuid: fromGlobalId(r.data.startTrainingRun.id).key, ms: t1 - t0, answeredAt: performance.timeOrigin + t1 };
}

async function waitAllFinished(t: TestServer, name: string, expected: number): Promise<void> {
  await waitFor(
    `${expected} '${name}' runs to finish`,
    async () => {
      const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM training_run WHERE name = $1 AND status IN ${FINAL}`, [name]);
      return n >= expected ? n : undefined;
    },
    120_000,
    50,
  );
}

async function latencyPhase(t: TestServer, s: Setup, n: number, cores: number, concurrency: number): Promise<void> {
  // A few unmeasured runs first: the first mutations and trainer spawns pay for JIT and caches.
  for (let i = 0; i < 5; i++) await startRun(t, s, 'bench-warmup');
  await waitAllFinished(t, 'bench-warmup', 5);

  const http: number[] = [];
  const rows: Array<{ uuid: string; total: number; outbox: number; pickup: number; afterAnswer: number }> = [];
  for (let i = 0; i < n; i++) {
    const { uuid, ms, answeredAt } = await startRun(t, s, 'bench-latency');
    http.push(ms);
    const row = await waitFor(
      `run ${uuid} to start`,
      async () => {
        // created_at is now() of the mutation's transaction (the outbox entry shares it); dispatched_at
        // is now() of the dispatcher's transaction; started_at is now() of the worker's UPDATE.
        const [r] = await t.sql(
          `SELECT EXTRACT(EPOCH FROM (r.started_at - r.created_at)) * 1000 AS total,
                  EXTRACT(EPOCH FROM (o.dispatched_at - r.created_at)) * 1000 AS outbox,
                  EXTRACT(EPOCH FROM (r.started_at - o.dispatched_at)) * 1000 AS pickup,
                  EXTRACT(EPOCH FROM r.started_at) * 1000 AS started
           FROM training_run r JOIN outbox_entry o ON o.job_id = r.id::text WHERE r.id = $1 AND r.started_at IS NOT NULL`,
          [uuid],
        );
        return r ? { uuid, total: Number(r.total), outbox: Number(r.outbox), pickup: Number(r.pickup), afterAnswer: Number(r.started) - answeredAt } : undefined;
      },
      120_000,
      2,
    );
    rows.push(row);
  }
  await waitAllFinished(t, 'bench-latency', n);

  const sorted = (k: 'total' | 'outbox' | 'pickup' | 'afterAnswer') => rows.map((r) => r[k]).sort((a, b) => a - b);
  const line = (what: string, v: number[]) => ({ measure: what, ...stats(v) });
  printTable(
    `queue latency: ${n} sequential startTrainingRun mutations, each awaited until the worker set started_at (noop trainer exits 2); WORKER_CONCURRENCY=${concurrency}, ${cores} CPU cores; ms, database clock`,
    [
      line('enqueue -> start (run.created_at -> started_at)', sorted('total')),
      line('  outbox wait (created_at -> dispatched_at)', sorted('outbox')),
      line('  BullMQ + worker (dispatched_at -> started_at)', sorted('pickup')),
      line('HTTP answer received -> started_at (host clock)', sorted('afterAnswer')),
      line('startTrainingRun HTTP round trip (client clock)', http.sort((a, b) => a - b)),
    ],
  );
  const slowest = [...rows].sort((a, b) => b.total - a.total).slice(0, 5);
  printTable(
    `queue latency: the ${slowest.length} slowest of ${n} runs, split by segment (ms)`,
    slowest.map((r, i) => ({ rank: i + 1, run: r.uuid, 'created -> started': r.total, 'outbox wait': r.outbox, 'BullMQ + worker': r.pickup, 'answer -> started': r.afterAnswer })),
  );
}

/** How many times the trainer itself ran each run, from the lines it appended to `executions`. */
async function executionsByRun(executions: string): Promise<Map<string, number>> {
  const text = await readFile(executions, 'utf8').catch(() => '');
  const counts = new Map<string, number>();
  for (const id of text.split('\n').filter(Boolean)) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

async function throughputPhase(t: TestServer, s: Setup, m: number, inFlight: number, cores: number, concurrency: number, executions: string): Promise<void> {
  let refused = 0;
  let firstError = '';
  const t0 = performance.now();
  await pool(m, inFlight, async () => {
    try {
      await startRun(t, s, 'bench-throughput');
    } catch (e) {
      refused += 1;
      firstError ||= (e as Error).message;
    }
  });
  const submitS = (performance.now() - t0) / 1000;
  const accepted = m - refused;
  if (accepted === 0) throw new Error(`queue bench: every mutation was refused; first: ${firstError}`);
  await waitAllFinished(t, 'bench-throughput', accepted);
  const wallS = (performance.now() - t0) / 1000;

  const [run] = await t.sql(
    `SELECT count(*)::int AS runs,
            count(*) FILTER (WHERE status = 'FAILED')::int AS failed,
            EXTRACT(EPOCH FROM (max(finished_at) - min(created_at))) AS span_s,
            EXTRACT(EPOCH FROM (max(created_at) - min(created_at))) AS commit_span_s
     FROM training_run WHERE name = 'bench-throughput'`,
  );
  const [all] = await t.sql(
    `SELECT (SELECT count(*)::int FROM training_run) AS runs,
            (SELECT count(*)::int FROM training_run WHERE attempts = 1) AS once,
            (SELECT count(*)::int FROM training_run WHERE attempts > 1) AS more,
            (SELECT count(*)::int FROM training_run WHERE attempts = 0) AS never,
            (SELECT count(*)::int FROM outbox_entry) AS created,
            (SELECT count(*)::int FROM outbox_entry WHERE dispatched_at IS NOT NULL) AS dispatched,
            (SELECT count(*)::int FROM outbox_entry WHERE dispatch_attempts = 1 AND dispatched_at IS NOT NULL) AS dispatched_first_try,
            (SELECT count(*)::int FROM outbox_entry WHERE last_error IS NOT NULL) AS with_error`,
  );
  // Exactly once, as the trainer saw it: every run of the database executed once, and no execution of a run it does not hold.
  const ran = await executionsByRun(executions);
  const runIds: string[] = (await t.sql(`SELECT id::text AS id FROM training_run`)).map((r: { id: string }) => r.id);
  const known = new Set(runIds);
  const once = runIds.filter((id) => ran.get(id) === 1).length;
  const more = runIds.filter((id) => (ran.get(id) ?? 0) > 1);
  const never = runIds.filter((id) => !ran.has(id));
  const strangers = [...ran.keys()].filter((id) => !known.has(id));
  const executed = [...ran.values()].reduce((a, b) => a + b, 0);
  const queues = t.server.app.queues;
  if (!queues) throw new Error('queue bench: the server has no queues');
  const jobs = await queues.get(QUEUES.training).getJobCounts('completed', 'failed', 'active', 'waiting', 'delayed');
  const spanS = Number(run.span_s);

  printTable(
    `queue throughput: ${m} startTrainingRun mutations, ${inFlight} in flight; WORKER_CONCURRENCY=${concurrency}, ${cores} CPU cores; noop trainer (exit 2, one stderr line)`,
    [
      { measure: 'mutations accepted / refused', value: `${accepted} / ${refused}` },
      { measure: 'mutations/s accepted (client wall clock)', value: (accepted / submitS).toFixed(1) },
      { measure: 'jobs/s end to end (first run created_at -> last finished_at)', value: (run.runs / spanS).toFixed(1) },
      { measure: 'seconds: submit / created span / end to end (db) / wall', value: `${submitS.toFixed(2)} / ${Number(run.commit_span_s).toFixed(2)} / ${spanS.toFixed(2)} / ${wallS.toFixed(2)}` },
      { measure: 'runs FAILED (expected: all)', value: `${run.failed} of ${run.runs}` },
    ],
  );
  printTable(`queue delivery: every run of the bench (warm-up, latency and throughput phases)`, [
    { check: 'outbox entries dispatched / created', value: `${all.dispatched} / ${all.created}` },
    { check: 'dispatched on the first attempt', value: all.dispatched_first_try },
    { check: 'entries with a dispatch error', value: all.with_error },
    { check: 'trainer executions recorded by the trainer / runs', value: `${executed} / ${runIds.length}` },
    { check: 'runs the trainer executed once / all (trainer\'s record)', value: `${once} / ${runIds.length}` },
    { check: 'runs the trainer executed more than once / never / unknown to the database', value: `${more.length} / ${never.length} / ${strangers.length}` },
    { check: 'server\'s own count: runs with attempts = 1 / > 1 / = 0', value: `${all.once} / ${all.more} / ${all.never}` },
    { check: 'BullMQ jobs failed / completed / active+waiting+delayed', value: `${jobs.failed} / ${jobs.completed} / ${jobs.active + jobs.waiting + jobs.delayed}` },
  ]);
  if (refused) console.log(`note: ${refused} mutation(s) refused; first: ${firstError}`);
  if (once !== runIds.length || strangers.length)
    throw new Error(
      `queue bench: not exactly once from the trainer's side: executed more than once ${more.slice(0, 5).join(', ') || '-'}; never ${never.slice(0, 5).join(', ') || '-'}; unknown ${strangers.slice(0, 5).join(', ') || '-'}`,
    );
}

/**
 * Measures the real training queue path: startTrainingRun → outbox (same transaction) → dispatcher
 * (LISTEN/NOTIFY) → BullMQ → in-process worker setting started_at, with a trainer that fails at once.
 * BENCH_QUEUE_N (default 200) sequential runs for latency, BENCH_QUEUE_M (default 500) for throughput.
 */
export async function queueBench(): Promise<void> {
  const n = Number(process.env.BENCH_QUEUE_N ?? 200);
  const m = Number(process.env.BENCH_QUEUE_M ?? 500);
  const inFlight = 16;
  const concurrency = 4;
  const cores = os.cpus().length;
  const trainers = await mkdtemp(path.join(os.tmpdir(), 'modelgov-queue-bench-'));
  let t: TestServer | null = null;
  const executions = path.join(trainers, 'executions.log');
  try {
    await writeFile(path.join(trainers, 'noop.js'), noopTrainer(executions));
    t = await startTestServer({ env: { TRAINER_REPOSITORIES: JSON.stringify({ [REPOSITORY]: trainers }), WORKER_CONCURRENCY: String(concurrency) } });
    const s = await setUp(t);
    await latencyPhase(t, s, n, cores, concurrency);
    await throughputPhase(t, s, m, inFlight, cores, concurrency, executions);
  } finally {
    try {
      // stop() removes the server's database and Redis prefix (with the bench's ~700 failed jobs).
      if (t) await t.stop();
    } finally {
      await rm(trainers, { recursive: true, force: true });
    }
  }
}
