import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/logger';
import { createExternalDataSandbox, removeExternalDataSandbox } from './external-data-sandbox';
import type { OrtWorkerOptions, WorkerReply, WorkerRequest } from './ort-worker';
import { stack, unstack, type WireTensor } from './tensors';

/** A run that did not finish within its time limit. */
export class InferenceTimeoutError extends Error {
  constructor(ms: number) {
    super(`inference did not finish within ${ms} ms`);
    this.name = 'InferenceTimeoutError';
  }
}

/** A run that the runtime refused or that failed inside the model. */
export class InferenceRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InferenceRunError';
  }
}

export interface PoolOptions {
  /** Names the pool in logs. */
  name: string;
  /** Inference threads. */
  size: number;
  providers: string[];
  intraOpNumThreads: number;
  /** Requests waiting for the same model version are stacked into one run, up to this many rows (1: never). */
  maxBatchRows: number;
  /** How long a request may wait for others to join its batch when a thread is free (0: never wait). */
  batchWaitUs: number;
  /**
   * A run of a row-independent model expected to take at least twice this (from the version's
   * recent runs) is split by rows across threads that would otherwise stay idle, each part
   * expected to take at least this; the parts' outputs are joined in order (0 or absent: never).
   */
  splitMinMs?: number;
  /**
   * How long one run may take on its thread, from the moment the thread takes it: this base plus
   * `runBudgetPerRowMs` for each row of the run. Past it the run is abandoned: its requests fail
   * with InferenceTimeoutError and its thread is replaced.
   */
  runBudgetMs: number;
  /** The budget's allowance per row, so that large batches of a quick model are not overruns. */
  runBudgetPerRowMs: number;
  /**
   * A retired thread still inside its run this long after the run started is stuck: reported once
   * through `onStuck`, and counted in {@link InferencePool.stuckThreads} until it exits. Also how long
   * a load waits for a live thread when every thread is retired.
   */
  stuckAfterMs: number;
  log: Logger;
  /** Called once per run (each part of a split run), for the metrics. */
  onBatch?: (versionId: string, requests: number, rows: number) => void;
  /** Called when a run is split, with the number of parts. */
  onSplit?: (versionId: string, parts: number) => void;
  /** Called once per run when it returns (`overran` false) or is abandoned past its budget (true). */
  onRun?: (versionId: string, ms: number, overran: boolean) => void;
  /** Called when an abandoned run of `versionId` is still running past `stuckAfterMs`. */
  onStuck?: (versionId: string) => void;
}

interface Pending {
  versionId: string;
  feeds: WireTensor[];
  rows: number;
  enqueuedAt: number;
  timeoutMs: number;
  settled: boolean;
  timer: NodeJS.Timeout;
  resolve(outputs: WireTensor[]): void;
  reject(e: Error): void;
}

/** One run split by rows across threads: the parts' outputs, in row order, as they come back. */
interface Split {
  /** Rows of each part, in order. */
  rows: number[];
  outputs: Array<WireTensor[] | null>;
  left: number;
  failed: boolean;
  /** Whether a part's overrun has been counted: the split run counts as one run over budget. */
  overran: boolean;
}

interface Batch {
  id: number;
  versionId: string;
  requests: Pending[];
  /** Rows in this run (a part's rows when split). */
  rows: number;
  /** Set when this run is one part of a split run: which part, of what. */
  split: { of: Split; part: number } | null;
  slot: Slot;
  startedAt: number;
  budgetMs: number;
  timer: NodeJS.Timeout;
}

interface Slot {
  n: number;
  worker: Worker;
  ready: boolean;
  retired: boolean;
  batch: Batch | null;
  loads: Map<number, { resolve(r: { provider: string; fellBack: string[] }): void; reject(e: Error): void }>;
}

interface LoadedModel {
  teamId: string;
  modelPath: string;
  warmup: WireTensor[];
  batchable: boolean;
  /** The runtime's time per row in this version's recent runs of several rows (null until one): what a split is judged on. */
  msPerRow: number | null;
  /**
   * False once a split run of this version overran its budget or gave outputs that do not join
   * (rows that are not independent after all): its runs are never split again while it is loaded.
   */
  splittable: boolean;
}

/** Runs of fewer rows say little about the time per row (a run's fixed cost dominates them). */
const ROWS_TO_LEARN_FROM = 8;

const WORKER_SCRIPT = path.join(__dirname, 'ort-worker.js');

/**
 * A fixed set of inference threads, each holding a session of every model version loaded into
 * this pool, and one queue per version in front of them. A free thread serves the teams in turn
 * (round-robin over the teams with work waiting, so one team's flood cannot starve another) and,
 * within the team, the version whose oldest request has waited longest; when the model allows it,
 * every request for that version queued behind it joins the run (micro-batching: under load
 * requests stack into one run; at rest a request runs alone at once).
 *
 * A run past the pool's run budget fails its requests and its thread is replaced. A thread inside
 * a native run cannot be stopped, only left to finish, so a retired thread still holds a core until
 * its run returns: replacements are started only while live and retired threads together stay
 * within twice the pool's size. Whatever its models do, a pool never runs more threads than that.
 * A retired thread whose run never returns is stuck for good: once stuck threads leave the pool
 * no live thread, it cannot serve until the process is replaced ({@link InferencePool.live},
 * {@link InferencePool.stuckThreads}), and loads fail after a bounded wait instead of waiting.
 */
export class InferencePool {
  private readonly slots: Slot[] = [];
  private readonly queues = new Map<string, Pending[]>();
  private readonly models = new Map<string, LoadedModel>();
  private nextId = 1;
  private spawned = 0;
  private closed = false;
  private waitTimer: NodeJS.Timeout | null = null;
  private pumpScheduled = false;
  /** Versions no route leads to any more, unloaded once the requests already handed to them are answered. */
  private readonly retiring = new Set<string>();
  /** Retired threads still finishing a run. */
  private readonly draining = new Set<Worker>();
  private readonly exited = new WeakSet<Worker>();
  /** Retired threads still inside a run past `stuckAfterMs`. */
  private readonly stuck = new Set<Worker>();
  /** Team served last: the next free thread looks at the teams after it first. */
  private lastTeam = '';
  /** Loads waiting for a thread while every one is retired. */
  private spawnWaiters: Array<() => void> = [];
  /** Threads replaced after a stuck run or a crash. */
  replacedThreads = 0;

  /** Where the threads' sessions resolve external-data references: empty, the pool's own, removed on close. */
  private readonly externalDataDir = createExternalDataSandbox();

  constructor(private readonly opts: PoolOptions) {
    for (let i = 0; i < opts.size; i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.opts.size;
  }

  /** Threads alive: serving, starting, or retired and still finishing a run (at most twice the size). */
  get running(): number {
    return this.slots.filter((s) => !s.retired).length + this.draining.size;
  }

  /** Threads that can take work: serving or starting, not retired. */
  get live(): number {
    return this.slots.filter((s) => !s.retired).length;
  }

  /** Retired threads stuck in a run that has not returned within `stuckAfterMs`. */
  get stuckThreads(): number {
    return this.stuck.size;
  }

  /** Requests waiting for a thread. */
  get queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  private spawn(): Slot {
    const workerData: OrtWorkerOptions = { providers: this.opts.providers, intraOpNumThreads: this.opts.intraOpNumThreads, externalDataDir: this.externalDataDir };
    const slot: Slot = { n: ++this.spawned, worker: new Worker(WORKER_SCRIPT, { workerData, env: {} }), ready: true, retired: false, batch: null, loads: new Map() };
    slot.worker.unref();
    slot.worker.on('message', (msg: WorkerReply) => this.onReply(slot, msg));
    slot.worker.on('error', (e) => this.onCrash(slot, e));
    slot.worker.on('exit', (code) => {
      this.exited.add(slot.worker);
      this.stuck.delete(slot.worker);
      if (!slot.retired && !this.closed) this.onCrash(slot, new Error(`inference thread exited with code ${code}`));
      else if (this.draining.delete(slot.worker)) this.refill();
    });
    return slot;
  }

  private send(slot: Slot, msg: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    slot.worker.postMessage(msg, transfer);
  }

  private loadInto(slot: Slot, versionId: string, model: LoadedModel): Promise<{ provider: string; fellBack: string[] }> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      slot.loads.set(id, { resolve, reject });
      // The warm-up tensors are copied (not transferred): every thread gets its own.
      this.send(slot, { op: 'load', id, versionId, modelPath: model.modelPath, warmup: model.warmup });
    });
  }

  /**
   * Loads a model version into every thread and runs it once (warm-up); resolves with the
   * execution provider in use once all threads can serve it. Rejects with InferenceRunError when
   * no thread is live (every one retired, and none can be started while stuck ones hold the
   * pool's cores) within `stuckAfterMs`.
   */
  async load(versionId: string, teamId: string, modelPath: string, warmup: WireTensor[], batchable: boolean): Promise<{ provider: string; fellBack: string[] }> {
    const model: LoadedModel = { teamId, modelPath, warmup, batchable, msPerRow: null, splittable: true };
    // Wanted again before its last requests were answered: it stays, unless this load fails.
    const wasRetiring = this.retiring.delete(versionId);
    try {
      return await this.loadEverywhere(versionId, model);
    } catch (e) {
      // The threads keep the sessions they had; they go once their requests are answered, as before.
      if (wasRetiring && this.models.has(versionId)) this.retire(versionId);
      throw e;
    }
  }

  private async loadEverywhere(versionId: string, model: LoadedModel): Promise<{ provider: string; fellBack: string[] }> {
    let live = this.slots.filter((s) => !s.retired);
    if (!live.length && !this.closed) {
      // Bounded: a thread that is merely being replaced comes back well within it; stuck ones never do.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.stuckAfterMs);
        timer.unref();
        this.spawnWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      live = this.slots.filter((s) => !s.retired);
    }
    if (this.closed) throw new InferenceRunError('the inference engine is shut down');
    if (!live.length) {
      throw new InferenceRunError(`no live inference thread in the ${this.opts.name} pool: ${this.stuck.size} threads are stuck in runs that cannot be stopped`);
    }
    const results = await Promise.all(live.map((s) => this.loadInto(s, versionId, model)));
    this.models.set(versionId, model);
    return results[0];
  }

  /** Whether this pool holds `versionId`: loaded, or retiring and still finishing its requests. */
  holds(versionId: string): boolean {
    return this.models.has(versionId);
  }

  /**
   * Drops a version from every thread once the requests already handed to it (waiting for a thread
   * or running) are answered; at once when there are none. For a version that leaves the routes (a
   * traffic split that moved on, a rollout that completed): a request that picked it a moment before
   * is answered by it rather than failed. Each waiting request keeps its own timeout, and a run its
   * budget, so the wait is bounded. Loading the version again before then keeps it.
   */
  retire(versionId: string): void {
    if (!this.models.has(versionId)) return;
    this.retiring.add(versionId);
    this.finishRetiring(versionId);
  }

  /** Unloads a retiring version once nothing waits for it or runs on it. */
  private finishRetiring(versionId: string): void {
    if (!this.retiring.has(versionId)) return;
    if (this.queues.get(versionId)?.some((p) => !p.settled)) return;
    if (this.slots.some((s) => s.batch?.versionId === versionId)) return;
    this.unload(versionId, 'retired');
  }

  /** Drops a version from every thread; its waiting requests fail with InferenceRunError. */
  unload(versionId: string, why = 'unloaded'): void {
    this.retiring.delete(versionId);
    this.models.delete(versionId);
    const q = this.queues.get(versionId);
    this.queues.delete(versionId);
    for (const p of q ?? []) this.settle(p, new InferenceRunError(`model version ${versionId} was ${why}`));
    for (const s of this.slots) if (!s.retired) this.send(s, { op: 'unload', versionId });
  }

  /**
   * Runs `feeds` (`rows` rows) on a loaded version; rejects with InferenceTimeoutError or
   * InferenceRunError. The feeds stay the caller's, intact: a thread gets a copy.
   */
  run(versionId: string, feeds: WireTensor[], rows: number, timeoutMs: number): Promise<WireTensor[]> {
    if (this.closed) return Promise.reject(new InferenceRunError('the inference engine is shut down'));
    if (!this.models.has(versionId)) return Promise.reject(new InferenceRunError(`model version ${versionId} is not loaded`));
    return new Promise<WireTensor[]>((resolve, reject) => {
      const now = performance.now();
      const p: Pending = {
        versionId,
        feeds,
        rows,
        enqueuedAt: now,
        timeoutMs,
        settled: false,
        timer: setTimeout(() => this.settle(p, new InferenceTimeoutError(timeoutMs)), timeoutMs),
        resolve,
        reject,
      };
      let q = this.queues.get(versionId);
      if (!q) this.queues.set(versionId, (q = []));
      q.push(p);
      this.pumpSoon();
    });
  }

  /**
   * Hands work to free threads once the event loop's current turn is over, so that the requests
   * that arrived together (a turn under load reads dozens) leave in one run and one message, instead
   * of the first one or two each taking a thread alone; at rest this costs one loop turn.
   */
  private pumpSoon(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private settle(p: Pending, outcome: Error | WireTensor[]): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  private pump(): void {
    for (const id of [...this.retiring]) this.finishRetiring(id);
    for (;;) {
      // A thread warming a version up is busy: a run sent now would wait behind the warm-up.
      const slot = this.slots.find((s) => s.ready && !s.retired && s.batch === null && s.loads.size === 0);
      if (!slot) return;
      const now = performance.now();
      // Per team, the version whose oldest live request has waited longest.
      const byTeam = new Map<string, Pending[]>();
      let wakeAt = Infinity;
      for (const q of this.queues.values()) {
        while (q.length && q[0].settled) q.shift();
        if (!q.length) continue;
        const model = this.models.get(q[0].versionId);
        const canBatch = model?.batchable && this.opts.maxBatchRows > 1;
        if (canBatch && this.opts.batchWaitUs > 0) {
          const rows = q.reduce((n, p) => n + (p.settled ? 0 : p.rows), 0);
          const ripe = q[0].enqueuedAt + this.opts.batchWaitUs / 1000;
          if (rows < this.opts.maxBatchRows && ripe > now) {
            wakeAt = Math.min(wakeAt, ripe);
            continue;
          }
        }
        const team = model?.teamId ?? '';
        const best = byTeam.get(team);
        if (!best || q[0].enqueuedAt < best[0].enqueuedAt) byTeam.set(team, q);
      }
      if (!byTeam.size) {
        if (wakeAt !== Infinity && !this.waitTimer) {
          this.waitTimer = setTimeout(() => {
            this.waitTimer = null;
            this.pump();
          }, Math.max(0, wakeAt - now));
        }
        return;
      }
      // Round-robin: the first team after the one served last, in a fixed (id) order.
      const teams = [...byTeam.keys()].sort();
      const team = teams.find((t) => t > this.lastTeam) ?? teams[0];
      this.lastTeam = team;
      const chosen = byTeam.get(team)!;
      const model = this.models.get(chosen[0].versionId);
      const requests = [chosen.shift()!];
      let rows = requests[0].rows;
      if (model?.batchable) {
        while (chosen.length) {
          const next = chosen[0];
          if (next.settled) {
            chosen.shift();
            continue;
          }
          if (rows + next.rows > this.opts.maxBatchRows) break;
          requests.push(chosen.shift()!);
          rows += next.rows;
        }
      }
      const feeds = stack(requests.map((r) => r.feeds));
      const slots = this.splitAcross(slot, model, rows);
      if (slots.length === 1) {
        this.dispatch(slot, requests, feeds, rows, null);
        continue;
      }
      // Contiguous row ranges, as even as they go; each part's tensors are fresh copies.
      const sizes = slots.map((_, i) => Math.floor(rows / slots.length) + (i < rows % slots.length ? 1 : 0));
      const pieces = unstack(feeds, sizes);
      const split: Split = { rows: sizes, outputs: sizes.map(() => null), left: slots.length, failed: false, overran: false };
      this.opts.onSplit?.(requests[0].versionId, slots.length);
      // The parts run side by side: each has the budget of the whole run.
      slots.forEach((s, i) => this.dispatch(s, requests, pieces[i], sizes[i], { of: split, part: i }, this.budgetFor(rows)));
    }
  }

  /**
   * The threads a run of `rows` rows goes to: `slot` alone, or with threads that would otherwise
   * stay idle (nothing else waits) when the version's recent runs say this one would take at least
   * twice `splitMinMs`. Splitting trades a little work (a copy of the inputs, a message per part) for
   * the time of a large request on an otherwise idle machine. A run expected to take more than half
   * its budget is not split (a slow version would hold every thread instead of one), nor are the runs
   * of a version whose split run once overran or gave outputs that do not join.
   */
  private splitAcross(slot: Slot, model: LoadedModel | undefined, rows: number): Slot[] {
    const min = this.opts.splitMinMs ?? 0;
    if (!min || !model?.batchable || !model.splittable || model.msPerRow === null || rows < 2) return [slot];
    const expected = model.msPerRow * rows;
    if (expected < 2 * min || expected > this.budgetFor(rows) / 2) return [slot];
    for (const q of this.queues.values()) if (q.some((p) => !p.settled)) return [slot];
    const idle = this.slots.filter((s) => s !== slot && s.ready && !s.retired && s.batch === null && s.loads.size === 0);
    const parts = Math.min(1 + idle.length, Math.floor(expected / min), rows);
    return [slot, ...idle.slice(0, parts - 1)];
  }

  private dispatch(slot: Slot, requests: Pending[], feeds: WireTensor[], rows: number, split: Batch['split'], budgetMs = this.budgetFor(rows)): void {
    const versionId = requests[0].versionId;
    const id = this.nextId++;
    const batch: Batch = {
      id,
      versionId,
      requests,
      rows,
      split,
      slot,
      startedAt: performance.now(),
      budgetMs,
      // Past its budget the run is stuck (or too slow to serve): give up on the thread.
      timer: setTimeout(() => this.onOverrun(batch), budgetMs),
    };
    slot.batch = batch;
    this.opts.onBatch?.(versionId, requests.length, rows);
    // Stacked feeds and split parts are the pool's own buffers and move to the thread; a lone
    // request's stay its caller's (copied into the message): the caller still reads them (the
    // service hashes them for the log after the answer).
    const transfer = feeds === requests[0].feeds ? [] : feeds.map((f) => f.data.buffer as ArrayBuffer);
    this.send(slot, { op: 'run', id, versionId, feeds }, transfer);
  }

  /** Hands a run's outputs (all of them, joined when the run was split) to its requests. */
  private deliver(batch: Batch, outputs: WireTensor[]): void {
    const rows = batch.requests.map((r) => r.rows);
    if (rows.length > 1) {
      // Requests stacked into one run get their own rows back only if every output has one row per
      // input row; otherwise the model's rows are not independent after all (say, one value for the
      // whole batch): the requests run again one by one, and the version is not batched again.
      const total = rows.reduce((a, b) => a + b, 0);
      if (!outputs.every((o) => o.dims[0] === total && o.data.length === o.dims.reduce((a, b) => a * b, 1))) {
        const model = this.models.get(batch.versionId);
        if (model) Object.assign(model, { batchable: false, splittable: false });
        this.opts.log.warn({ pool: this.opts.name, versionId: batch.versionId }, 'a batched run gave outputs without one row per input row: running its requests one by one, and not batching this version again');
        this.requeue(batch);
        return;
      }
    }
    const parts = unstack(outputs, rows);
    batch.requests.forEach((r, i) => this.settle(r, parts[i]));
  }

  /** Puts a run's unanswered requests back at the front of their version's queue (their own feeds are intact). */
  private requeue(batch: Batch): void {
    const live = batch.requests.filter((r) => !r.settled);
    if (!live.length) return;
    let q = this.queues.get(batch.versionId);
    if (!q) this.queues.set(batch.versionId, (q = []));
    q.unshift(...live);
  }

  /**
   * Joins a split run's outputs and hands them to its requests. Outputs whose first dimension is not
   * each part's rows, or whose other dimensions differ between parts, come from a model whose rows
   * are not independent: joined they would be wrong, so the requests go back to the front of their
   * queue to run whole, and the version is not split again.
   */
  private join(batch: Batch, split: Split, model: LoadedModel | undefined): void {
    const parts = split.outputs as WireTensor[][];
    const joinable = parts[0].every((first, k) =>
      parts.every((p, i) => {
        const t = p[k];
        if (!t || t.name !== first.name || t.dims.length !== first.dims.length || t.dims[0] !== split.rows[i]) return false;
        if (t.dims.some((d, j) => j > 0 && d !== first.dims[j])) return false;
        return t.data.length === t.dims.reduce((a, b) => a * b, 1);
      }),
    );
    if (joinable) {
      this.deliver(batch, stack(parts));
      return;
    }
    if (model) model.splittable = false;
    this.opts.log.warn({ pool: this.opts.name, versionId: batch.versionId }, 'a split run gave outputs that do not join by rows: running its requests whole, and not splitting this version again');
    this.requeue(batch);
  }

  private fail(batch: Batch, e: Error): void {
    if (batch.split) batch.split.of.failed = true;
    for (const r of batch.requests) this.settle(r, e);
  }

  private onReply(slot: Slot, msg: WorkerReply): void {
    if (msg.op === 'loaded' || msg.op === 'loadFailed') {
      const waiter = slot.loads.get(msg.id);
      slot.loads.delete(msg.id);
      if (msg.op === 'loaded') waiter?.resolve({ provider: msg.provider, fellBack: msg.fellBack });
      else waiter?.reject(new InferenceRunError(`loading model version ${msg.versionId} failed: ${msg.error}`));
      // The thread is free again once its last load is done.
      if (slot.loads.size === 0) this.pump();
      return;
    }
    const batch = slot.batch;
    if (!batch || batch.id !== msg.id) return;
    clearTimeout(batch.timer);
    slot.batch = null;
    this.opts.onRun?.(batch.versionId, performance.now() - batch.startedAt, false);
    if (msg.op === 'result') {
      const model = this.models.get(batch.versionId);
      if (model && batch.rows >= ROWS_TO_LEARN_FROM) {
        const perRow = msg.runMs / batch.rows;
        model.msPerRow = model.msPerRow === null ? perRow : 0.8 * model.msPerRow + 0.2 * perRow;
      }
      const split = batch.split;
      if (!split) this.deliver(batch, msg.outputs);
      else {
        split.of.outputs[split.part] = msg.outputs;
        split.of.left -= 1;
        if (split.of.left === 0 && !split.of.failed) this.join(batch, split.of, model);
      }
    } else {
      this.fail(batch, new InferenceRunError(msg.error));
    }
    this.pump();
  }

  /** The run budget of a run of `rows` rows: the base plus the per-row allowance. */
  budgetFor(rows: number): number {
    return this.opts.runBudgetMs + this.opts.runBudgetPerRowMs * rows;
  }

  private onOverrun(batch: Batch): void {
    if (batch.slot.batch !== batch) return;
    const budget = batch.budgetMs;
    const worker = batch.slot.worker;
    // One split run is one run over budget, however many of its parts overrun; its version is not
    // split again, so a slow input holds one thread per run, as it would unsplit.
    let counted = false;
    if (batch.split) {
      batch.split.of.failed = true;
      counted = batch.split.of.overran;
      batch.split.of.overran = true;
      const model = this.models.get(batch.versionId);
      if (model) model.splittable = false;
    }
    for (const r of batch.requests) this.settle(r, new InferenceTimeoutError(Math.min(budget, r.timeoutMs)));
    this.opts.log.warn({ pool: this.opts.name, versionId: batch.versionId, thread: batch.slot.n, budgetMs: budget }, 'inference run past its time budget: replacing the thread');
    this.replace(batch.slot);
    if (!counted) this.opts.onRun?.(batch.versionId, performance.now() - batch.startedAt, true);
    const stuckIn = Math.max(0, batch.startedAt + this.opts.stuckAfterMs - performance.now());
    setTimeout(() => {
      if (this.closed || this.exited.has(worker)) return;
      this.stuck.add(worker);
      this.opts.log.error({ pool: this.opts.name, versionId: batch.versionId, thread: batch.slot.n, stuckAfterMs: this.opts.stuckAfterMs }, 'inference thread stuck in a run that cannot be stopped');
      this.opts.onStuck?.(batch.versionId);
    }, stuckIn).unref();
  }

  private onCrash(slot: Slot, e: Error): void {
    if (slot.retired || this.closed) return;
    this.opts.log.error({ err: e.message, thread: slot.n }, 'inference thread failed: replacing it');
    if (slot.batch) {
      clearTimeout(slot.batch.timer);
      this.fail(slot.batch, new InferenceRunError(`inference thread failed: ${e.message}`));
    }
    this.replace(slot);
  }

  /**
   * Retires a thread and starts another that loads every model before it takes work. The retired
   * thread is asked to exit, which it does once its run returns: a thread cannot be stopped inside
   * a native run (terminating it there aborts the process), only left to finish it.
   */
  private replace(slot: Slot): void {
    slot.retired = true;
    if (slot.batch) clearTimeout(slot.batch.timer);
    slot.batch = null;
    for (const w of slot.loads.values()) w.reject(new InferenceRunError('inference thread replaced'));
    slot.loads.clear();
    this.send(slot, { op: 'close' });
    if (!this.exited.has(slot.worker)) this.draining.add(slot.worker);
    this.replacedThreads += 1;
    this.refill();
  }

  /** Starts threads in place of retired ones while live and draining threads stay within twice the size. */
  private refill(): void {
    if (this.closed) return;
    for (let i = 0; i < this.slots.length; i++) {
      if (!this.slots[i].retired) continue;
      // A retired thread still in its run holds a core: it counts until it exits.
      if (this.running >= 2 * this.opts.size) return;
      const fresh = this.spawn();
      fresh.ready = false;
      this.slots[i] = fresh;
      const waiters = this.spawnWaiters;
      this.spawnWaiters = [];
      void Promise.allSettled([...this.models].map(([versionId, model]) => this.loadInto(fresh, versionId, model))).then(() => {
        fresh.ready = true;
        for (const w of waiters) w();
        this.pump();
      });
    }
  }

  /** Fails what waits, and lets every thread finish its run and exit. */
  async close(graceMs = 10_000): Promise<void> {
    this.closed = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    for (const w of this.spawnWaiters) w();
    this.spawnWaiters = [];
    for (const q of this.queues.values()) for (const p of q) this.settle(p, new InferenceRunError('the inference engine is shut down'));
    this.queues.clear();
    const exits: Array<Promise<unknown>> = [];
    for (const s of this.slots) {
      if (s.batch) {
        clearTimeout(s.batch.timer);
        for (const r of s.batch.requests) this.settle(r, new InferenceRunError('the inference engine is shut down'));
      }
      s.retired = true;
      // Counted in `running` until it exits: a thread still in a run after the grace keeps the process alive.
      if (!this.exited.has(s.worker)) this.draining.add(s.worker);
      exits.push(new Promise((resolve) => s.worker.once('exit', resolve)));
      this.send(s, { op: 'close' });
    }
    for (const w of this.draining) exits.push(new Promise((resolve) => w.once('exit', resolve)));
    const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(exits), timer]);
    removeExternalDataSandbox(this.externalDataDir);
  }
}
