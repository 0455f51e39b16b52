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
  /** Called once per run, for the metrics. */
  onBatch?: (versionId: string, requests: number, rows: number) => void;
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

interface Batch {
  id: number;
  versionId: string;
  requests: Pending[];
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
}

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
    const model = { teamId, modelPath, warmup, batchable };
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

  /** Drops a version from every thread; its waiting requests fail with InferenceRunError. */
  unload(versionId: string, why = 'unloaded'): void {
    this.models.delete(versionId);
    const q = this.queues.get(versionId);
    this.queues.delete(versionId);
    for (const p of q ?? []) this.settle(p, new InferenceRunError(`model version ${versionId} was ${why}`));
    for (const s of this.slots) if (!s.retired) this.send(s, { op: 'unload', versionId });
  }

  /** Runs `feeds` (`rows` rows) on a loaded version; rejects with InferenceTimeoutError or InferenceRunError. */
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
      this.dispatch(slot, requests);
    }
  }

  private dispatch(slot: Slot, requests: Pending[]): void {
    const versionId = requests[0].versionId;
    const feeds = stack(requests.map((r) => r.feeds));
    const id = this.nextId++;
    const rows = requests.reduce((n, r) => n + r.rows, 0);
    const budgetMs = this.budgetFor(rows);
    const batch: Batch = {
      id,
      versionId,
      requests,
      slot,
      startedAt: performance.now(),
      budgetMs,
      // Past its budget the run is stuck (or too slow to serve): give up on the thread.
      timer: setTimeout(() => this.onOverrun(batch), budgetMs),
    };
    slot.batch = batch;
    this.opts.onBatch?.(versionId, requests.length, rows);
    // Stacked feeds are fresh buffers and can be transferred; a lone request's are its own.
    const transfer = feeds.map((f) => f.data.buffer as ArrayBuffer);
    this.send(slot, { op: 'run', id, versionId, feeds }, transfer);
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
      const parts = unstack(msg.outputs, batch.requests.map((r) => r.rows));
      batch.requests.forEach((r, i) => this.settle(r, parts[i]));
    } else {
      for (const r of batch.requests) this.settle(r, new InferenceRunError(msg.error));
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
    for (const r of batch.requests) this.settle(r, new InferenceTimeoutError(Math.min(budget, r.timeoutMs)));
    this.opts.log.warn({ pool: this.opts.name, versionId: batch.versionId, thread: batch.slot.n, budgetMs: budget }, 'inference run past its time budget: replacing the thread');
    this.replace(batch.slot);
    this.opts.onRun?.(batch.versionId, performance.now() - batch.startedAt, true);
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
      for (const r of slot.batch.requests) this.settle(r, new InferenceRunError(`inference thread failed: ${e.message}`));
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
