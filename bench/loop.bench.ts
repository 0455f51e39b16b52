import { syntheticPopulation, type Concept } from '../jobs/trainers/synthetic-data';
import { startTestServer, type TestServer } from '../test/support/harness';
import { printTable } from './stats';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id modelVersionId outputs } }`;
const RECORD = `mutation($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { recorded rejected } }`;
const MONITORING = `mutation($input: DeploymentMonitoringInput!) { setDeploymentMonitoring(input: $input) { id } }`;
const RETRAIN = `mutation($input: SetRetrainPolicyInput!) { setRetrainPolicy(input: $input) { id } }`;
const PROMOTION = `mutation($input: SetPromotionPolicyInput!) { setPromotionPolicy(input: $input) { id } }`;
const CREATE = `mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`;
const ITERATIONS = `query($d: ID!) { iterations(deployment: $d) { id status } }`;
const ITERATION = `query($id: ID!) { iteration(id: $id) {
  id status message triggerKind trigger requestId
  trainingData { id }
  candidate { id status } gate { decision reasons candidateFigures { accuracy } championFigures { accuracy } }
  steps { step at }
} }`;
const SPLIT = `query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id version } } } } }`;
const AUDIT = `query($r: String!) { auditEvents(first: 200, filter: { requestId: $r }) { nodes { action actorId } } }`;
const LINEAGE = `query($id: ID!) { lineage(id: $id, direction: UPSTREAM, depth: 4) { edges { from to relation } } }`;

const FINISHED = new Set(['PROMOTED', 'HANDED_OFF', 'REJECTED', 'ROLLED_BACK', 'FAILED']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const envNumber = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

// Compressed windows: a 5 s monitoring window judged every second, a loop tick of 1 s.
const WINDOW_SECONDS = envNumber('BENCH_LOOP_WINDOW_SECONDS', 5);
const LABEL_DELAY_MS = envNumber('BENCH_LOOP_LABEL_DELAY_MS', 2000);
const STEADY_SECONDS = envNumber('BENCH_LOOP_STEADY_SECONDS', 30);
const RECOVERY_SECONDS = envNumber('BENCH_LOOP_RECOVERY_SECONDS', 15);
const PROMOTE_TIMEOUT_SECONDS = envNumber('BENCH_LOOP_TIMEOUT_SECONDS', 240);
const CONTROL_SECONDS = envNumber('BENCH_LOOP_CONTROL_SECONDS', 90);
const BUCKET_SECONDS = 5;
const ROWS_PER_REQUEST = 10;
const REQUEST_EVERY_MS = 100;
const TARGET_PROMOTE_SECONDS = 300;
const TARGET_RECOVERED_SHARE = 0.95;

/** One served row: when it was sent, under which concept, the decision served and the label that later arrived. */
interface Served {
  at: number;
  concept: Concept;
  decision: 0 | 1;
  label: 0 | 1;
  version: string;
}

/**
 * The bench's only client: counts every mutation other than predict and recordOutcomes made while
 * `armed` (after the policies are set), which is a manual call the loop should not have needed.
 */
class Client {
  armed = false;
  manual: string[] = [];
  constructor(private readonly t: TestServer, readonly token: string) {}

  async gql(query: string, variables: Record<string, unknown> = {}): Promise<any> {
    const m = /^\s*mutation[^{]*\{\s*(\w+)/.exec(query);
    if (m && this.armed && m[1] !== 'predict' && m[1] !== 'recordOutcomes') this.manual.push(m[1]);
    const r = await this.t.gql(this.token, query, variables);
    if (r.errors) throw new Error(`${m?.[1] ?? 'query'}: ${JSON.stringify(r.errors)}`);
    return r.data;
  }
}

/** The probability of class 1 in a row of the model's outputs (the first output, its last column). */
function scoreOf(outputs: Record<string, unknown>, row: number): number {
  const key = 'probability' in outputs ? 'probability' : Object.keys(outputs)[0];
  const rows = outputs[key] as Array<number | number[]>;
  const r = rows[row];
  return Array.isArray(r) ? r[r.length - 1] : r;
}

/**
 * A simulated population sending requests continuously to a deployment; each request's labels
 * are recorded `LABEL_DELAY_MS` after its answer, from a queue drained in batches (ground truth
 * arrives late, never with the prediction).
 */
class Traffic {
  private concept: Concept = 'steady';
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly queue: Array<{ due: number; outcomes: Array<{ prediction: string; row: number; label: number }> }> = [];
  private readonly population: ReturnType<typeof syntheticPopulation>;
  readonly served: Served[] = [];
  errors = 0;
  lastError = '';
  labelsRecorded = 0;

  constructor(private readonly client: Client, private readonly deployment: string, seed: number) {
    this.population = syntheticPopulation({ seed, nFeatures: 4 });
  }

  set(concept: Concept): void {
    this.concept = concept;
  }

  private async request(): Promise<void> {
    const concept = this.concept;
    const drawn = Array.from({ length: ROWS_PER_REQUEST }, () => this.population.draw(concept));
    const at = Date.now();
    const p = (await this.client.gql(PREDICT, { d: this.deployment, inputs: { features: drawn.map((d) => d.x) } })).predict;
    drawn.forEach((d, row) => this.served.push({ at, concept, decision: scoreOf(p.outputs, row) >= 0.5 ? 1 : 0, label: d.label, version: p.modelVersionId }));
    this.queue.push({ due: Date.now() + LABEL_DELAY_MS, outcomes: drawn.map((d, row) => ({ prediction: p.id, row, label: d.label })) });
  }

  private async drain(all = false): Promise<void> {
    const now = Date.now();
    const outcomes: Array<{ prediction: string; row: number; label: number }> = [];
    while (this.queue.length && (all || this.queue[0].due <= now) && outcomes.length + this.queue[0].outcomes.length <= 1000) outcomes.push(...this.queue.shift()!.outcomes);
    if (!outcomes.length) return;
    await this.client.gql(RECORD, { input: { deployment: this.deployment, outcomes } });
    this.labelsRecorded += outcomes.length;
  }

  start(): void {
    this.running = true;
    const guarded = async (fn: () => Promise<void>, everyMs: number) => {
      while (this.running) {
        try {
          await fn();
        } catch (e) {
          this.errors++;
          this.lastError = (e as Error).message.slice(0, 300);
        }
        await sleep(everyMs);
      }
    };
    this.loops = [guarded(() => this.request(), REQUEST_EVERY_MS), guarded(() => this.drain(), 100)];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    // The labels still queued are recorded now; a failure here drops them (drain took them off the queue).
    while (this.queue.length) {
      try {
        await this.drain(true);
      } catch (e) {
        this.errors++;
        this.lastError = (e as Error).message.slice(0, 300);
      }
    }
  }
}

function accuracy(rows: Served[]): number {
  return rows.length ? rows.filter((r) => r.decision === r.label).length / rows.length : NaN;
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');

/** Polls a deployment's latest iteration until `done` says so or `timeoutMs` passes; returns the last seen. */
async function watch(client: Client, deployment: string, done: (it: any) => boolean, timeoutMs: number): Promise<{ it: any; timedOut: boolean; seen: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let it: any = null;
  const seen: string[] = [];
  while (Date.now() < deadline) {
    const list = (await client.gql(ITERATIONS, { d: deployment })).iterations;
    if (list.length) {
      it = (await client.gql(ITERATION, { id: list[0].id })).iteration;
      if (seen[seen.length - 1] !== it.status) seen.push(it.status);
      if (done(it)) return { it, timedOut: false, seen };
    }
    await sleep(500);
  }
  return { it, timedOut: true, seen };
}

/**
 * `npm run bench -- loop`: the iteration loop end to end on a fresh server with compressed
 * windows. A simulated population sends traffic to the demo's fraud STAGING deployment, labels
 * arriving 2 s late; after a steady spell the concept shifts (the label relationship flips). The
 * loop must detect it, retrain on production traffic, gate, shadow and canary the candidate to
 * 100 % with no call beyond predictions and outcomes. Then a negative control: a new deployment of
 * the champion fed pure noise, whose loop must promote nothing.
 */
export async function loopBench(): Promise<void> {
  const t = await startTestServer({
    demo: true,
    env: { LOOP_TICK_SECONDS: '1', MONITOR_WINDOW_SECONDS: String(WINDOW_SECONDS), MONITOR_EVERY_SECONDS: '1', MONITOR_MIN_REQUESTS: '5', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error' },
  });
  let traffic: Traffic | null = null;
  try {
    const client = new Client(t, t.token(['ml-engineer'], ['fraud'], 'bench-engineer'));
    const service = new Client(t, t.token(['service'], ['fraud'], 'bench-service'));
    const auditor = new Client(t, t.token(['auditor'], ['fraud'], 'bench-auditor'));
    const list = await client.gql(`{ deployments(filter: { team: "fraud" }) { nodes { id environment } } }`);
    const staging = list.deployments.nodes.find((d: { environment: string }) => d.environment === 'STAGING').id as string;
    const production = list.deployments.nodes.find((d: { environment: string }) => d.environment === 'PRODUCTION').id as string;
    const champion = (await client.gql(SPLIT, { id: production })).node.trafficSplit[0].modelVersion.id as string;
    const splitBefore = (await client.gql(SPLIT, { id: staging })).node.trafficSplit;

    // The policies: a quality trigger on accuracy; a short shadow, canary 50 → 100 % with 5 s bakes.
    const policies = async (d: string) => {
      await client.gql(MONITORING, { input: { deployment: d, windowSeconds: WINDOW_SECONDS, everySeconds: 1, minRequests: 5, quality: { lookbackSeconds: 60, minLabelled: 100 } } });
      await client.gql(RETRAIN, {
        input: { deployment: d, quality: { metric: 'accuracy', maxDrop: 0.2, minLabelled: 100 }, cooldownSeconds: 600, sampleWindows: 2, collectSeconds: 10, holdoutShare: 0.3, gate: { minRows: 60 } },
      });
      await client.gql(PROMOTION, { input: { deployment: d, shadowSeconds: 3, steps: [50, 100], bakeSeconds: 5, minRequests: 10 } });
    };
    await policies(staging);
    client.armed = service.armed = true;

    // 1. Steady state.
    traffic = new Traffic(service, staging, 4242);
    traffic.start();
    await sleep(STEADY_SECONDS * 1000);
    const falseStarts = (await client.gql(ITERATIONS, { d: staging })).iterations.length;

    // 2. The concept shift, then the loop on its own.
    const shiftAt = Date.now();
    traffic.set('shifted');
    const { it, timedOut, seen } = await watch(client, staging, (x) => FINISHED.has(x.status), PROMOTE_TIMEOUT_SECONDS * 1000);
    const steps: Array<{ step: string; at: string }> = it?.steps ?? [];
    const stepAt = (s: string) => {
      const hit = steps.find((x) => x.step === s);
      return hit ? new Date(hit.at).getTime() : NaN;
    };
    const promotedAt = stepAt('PROMOTED');
    if (Number.isFinite(promotedAt)) await sleep(Math.max(0, promotedAt + RECOVERY_SECONDS * 1000 - Date.now()));
    await traffic.stop();
    const served = traffic.served;
    const trafficErrors = traffic.errors;
    const trafficLastError = traffic.lastError;
    traffic = null;
    client.armed = service.armed = false;
    const splitAfter = (await client.gql(SPLIT, { id: staging })).node.trafficSplit;

    if (timedOut || it?.status !== 'PROMOTED') {
      console.log(`\nThe shift's iteration did not reach PROMOTED within ${PROMOTE_TIMEOUT_SECONDS} s: statuses seen ${seen.join(' → ') || 'none'}; last ${JSON.stringify(it && { status: it.status, message: it.message, gate: it.gate })}`);
    }
    if (trafficErrors) console.log(`\n${trafficErrors} traffic calls failed; last: ${trafficLastError}`);

    // Accuracy of what was served: before the shift (after a 5 s warm-up), per 5 s bucket after it, after PROMOTED.
    const pre = served.filter((r) => r.at < shiftAt && r.at >= shiftAt - (STEADY_SECONDS - 5) * 1000);
    const preAccuracy = accuracy(pre);
    const end = Number.isFinite(promotedAt) ? promotedAt : Date.now();
    const buckets: Array<{ from: number; acc: number; n: number }> = [];
    for (let from = shiftAt; from < end; from += BUCKET_SECONDS * 1000) {
      const rows = served.filter((r) => r.at >= from && r.at < from + BUCKET_SECONDS * 1000);
      if (rows.length >= 20) buckets.push({ from, acc: accuracy(rows), n: rows.length });
    }
    const worst = buckets.reduce((w, b) => (b.acc < w.acc ? b : w), { from: shiftAt, acc: Infinity, n: 0 });
    const recovered = Number.isFinite(promotedAt) ? served.filter((r) => r.at >= promotedAt) : [];
    const recoveredAccuracy = accuracy(recovered);

    // Who acted in the iteration's audit chain: the policy setter and system principals only.
    const actors = it?.requestId ? [...new Set<string>((await auditor.gql(AUDIT, { r: it.requestId })).auditEvents.nodes.map((e: { actorId: string }) => e.actorId))] : [];
    const people = actors.filter((a) => a !== 'bench-engineer' && !a.startsWith('system:'));
    const chain: string[] = it?.requestId ? (await auditor.gql(AUDIT, { r: it.requestId })).auditEvents.nodes.map((e: { action: string }) => e.action).reverse() : [];
    // The promoted version's lineage names the production sample of this deployment it learned from.
    const learnedFrom =
      it?.candidate && it.trainingData
        ? (await client.gql(LINEAGE, { id: it.candidate.id })).lineage.edges.some((e: { from: string; to: string; relation: string }) => e.relation === 'SAMPLED' && e.from === staging && e.to === it.trainingData.id)
        : false;

    const timeline: Array<Record<string, string>> = [{ event: 'concept shift (population → shifted)', 'seconds since shift': '0.0' }];
    for (const s of steps) timeline.push({ event: s.step, 'seconds since shift': seconds(new Date(s.at).getTime() - shiftAt) });
    printTable(`Iteration loop on the demo's fraud STAGING deployment: concept shift after ${STEADY_SECONDS} s steady (labels ${LABEL_DELAY_MS / 1000} s late, ${WINDOW_SECONDS} s windows, 1 s loop tick)`, timeline);
    if (buckets.length) {
      printTable(
        `Served accuracy per ${BUCKET_SECONDS} s after the shift, until PROMOTED (before the shift: ${pct(preAccuracy)})`,
        buckets.map((b) => ({ 'seconds since shift': `${seconds(b.from - shiftAt)}–${seconds(b.from - shiftAt + BUCKET_SECONDS * 1000)}`, rows: b.n, accuracy: pct(b.acc) })),
      );
    }

    // 3. The negative control: a new STAGING deployment of the champion, fed pure noise.
    const control = (await client.gql(CREATE, { v: champion, n: 'fraud-loop-control' })).createDeployment.id as string;
    await policies(control);
    client.armed = service.armed = true;
    const manualBeforeControl = client.manual.length + service.manual.length;
    traffic = new Traffic(service, control, 777);
    traffic.set('noise');
    traffic.start();
    const controlStarted = Date.now();
    // Watch for the whole control period; an iteration that finishes early ends nothing: another could begin.
    let controlLast: any = null;
    while (Date.now() < controlStarted + CONTROL_SECONDS * 1000) {
      const w = await watch(client, control, () => false, Math.min(5000, controlStarted + CONTROL_SECONDS * 1000 - Date.now()));
      controlLast = w.it ?? controlLast;
    }
    // An iteration still in flight at the end gets a bounded while to finish.
    if (controlLast && !FINISHED.has(controlLast.status)) controlLast = (await watch(client, control, (x) => FINISHED.has(x.status), 60_000)).it;
    await traffic.stop();
    const controlServed = traffic.served;
    traffic = null;
    client.armed = service.armed = false;
    const controlIterations = [];
    for (const c of (await client.gql(ITERATIONS, { d: control })).iterations) controlIterations.push((await client.gql(ITERATION, { id: c.id })).iteration);
    const controlSplit = (await client.gql(SPLIT, { id: control })).node.trafficSplit;
    const controlSplitChanged = !(controlSplit.length === 1 && controlSplit[0].modelVersion.id === champion && controlSplit[0].weight === 100);
    const controlPromoted = controlIterations.filter((x) => x.status === 'PROMOTED' || x.steps.some((s: { step: string }) => s.step === 'CANARY_STARTED')).length;
    printTable(`Negative control: a new STAGING deployment of the champion fed pure noise for ${CONTROL_SECONDS} s (same policies)`, [
      {
        'rows served': controlServed.length,
        'served accuracy': pct(accuracy(controlServed)),
        'iterations begun': controlIterations.length,
        outcomes: controlIterations.map((x) => `${x.status}${x.gate ? ` (gate ${x.gate.decision}: candidate ${x.gate.candidateFigures?.accuracy?.toFixed(3)} vs champion ${x.gate.championFigures?.accuracy?.toFixed(3)})` : ''}: ${x.message ?? ''}`).join('; ') || 'none',
        'traffic split changed': controlSplitChanged ? `yes: ${JSON.stringify(controlSplit)}` : 'no (champion 100 %)',
      },
    ]);

    const manual = [...client.manual, ...service.manual];
    const toPromoted = (promotedAt - shiftAt) / 1000;
    const recoveredShare = recoveredAccuracy / preAccuracy;
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    printTable('Iteration loop results', [
      { measure: 'accuracy before the shift (served, steady)', target: '', measured: `${pct(preAccuracy)} (${pre.length} rows)`, result: '' },
      { measure: `accuracy at its worst (${BUCKET_SECONDS} s bucket after the shift)`, target: '', measured: Number.isFinite(worst.acc) ? `${pct(worst.acc)} at ${seconds(worst.from - shiftAt)} s` : 'n/a', result: '' },
      { measure: 'iterations begun in the steady spell', target: '0', measured: String(falseStarts), result: verdict(falseStarts === 0) },
      { measure: 'shift → detection (TRIGGERED)', target: '', measured: `${seconds(stepAt('TRIGGERED') - shiftAt)} s`, result: '' },
      { measure: 'shift → retrain start (TRAINING_STARTED)', target: '', measured: `${seconds(stepAt('TRAINING_STARTED') - shiftAt)} s`, result: '' },
      { measure: 'shift → candidate (CANDIDATE_REGISTERED)', target: '', measured: `${seconds(stepAt('CANDIDATE_REGISTERED') - shiftAt)} s`, result: '' },
      { measure: 'shift → gate (GATE_PASSED)', target: '', measured: `${seconds(stepAt('GATE_PASSED') - shiftAt)} s`, result: '' },
      { measure: 'shift → 100 % traffic (PROMOTED)', target: `≤ ${TARGET_PROMOTE_SECONDS} s`, measured: Number.isFinite(toPromoted) ? `${toPromoted.toFixed(1)} s` : `not within ${PROMOTE_TIMEOUT_SECONDS} s`, result: verdict(toPromoted <= TARGET_PROMOTE_SECONDS) },
      {
        measure: `recovered accuracy (served, ${RECOVERY_SECONDS} s after PROMOTED) / pre-shift`,
        target: `≥ ${TARGET_RECOVERED_SHARE * 100} %`,
        measured: Number.isFinite(recoveredShare) ? `${pct(recoveredShare)} (${pct(recoveredAccuracy)}, ${recovered.length} rows)` : 'n/a',
        result: verdict(recoveredShare >= TARGET_RECOVERED_SHARE),
      },
      {
        measure: 'manual calls after the policies were set',
        target: '0',
        measured: `${manual.length}${manual.length ? ` (${manual.join(', ')})` : ''}; people in the audit chain: ${people.length ? people.join(', ') : 'none'}`,
        result: verdict(manual.length === 0 && people.length === 0 && manualBeforeControl === 0),
      },
      {
        measure: "promoted version's lineage: the deployment's production sample",
        target: 'Deployment –SAMPLED→ its training data',
        measured: learnedFrom ? `yes (${it.trainingData.id})` : 'no',
        result: verdict(learnedFrom),
      },
      {
        measure: 'the whole chain in one audit query (requestId)',
        target: 'trigger … promotion',
        measured: `${chain.length} events: ${[...new Set(chain)].join(', ')}`,
        result: verdict(['beginIteration', 'startTrainingRun', 'registerModelVersion', 'challengeModelVersion', 'startRollout', 'finishIteration'].every((a) => chain.includes(a))),
      },
      {
        measure: 'the control promotes nothing',
        target: '0 promoted, split unchanged',
        measured: `${controlIterations.length} begun, ${controlPromoted} promoted/canaried, split ${controlSplitChanged ? 'changed' : 'unchanged'}`,
        result: verdict(controlPromoted === 0 && !controlSplitChanged),
      },
    ]);
    const split = (s: Array<{ weight: number; modelVersion: { id: string; version: string } }>) => s.map((x) => `v${x.modelVersion.version}${x.modelVersion.id === it?.candidate?.id ? ' (candidate)' : ''} ${x.weight} %`).join(', ');
    console.log(`\nStaging split before: ${split(splitBefore)}; after: ${split(splitAfter)}. Gate: ${it?.gate ? `${it.gate.decision}, ${it.gate.reasons.join('; ')}` : 'none'}`);
  } finally {
    await traffic?.stop().catch(() => undefined);
    await t.stop();
  }
}
