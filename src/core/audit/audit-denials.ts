import type { DataSource } from 'typeorm';
import type { Principal } from '../ability';
import type { Logger } from '../logger';
import { AuditDecision } from './audit-event.entity';
import { appendAudit } from './audit-chain';
import type { AuditEntry, DeniedAttempt } from './audit-entry';
export type { DeniedAttempt } from './audit-entry';

/** How refused attempts are recorded (see the README's audit trail section). */
export interface DenialSettings {
  /** Refused attempts a principal may make per second, once its burst is spent. */
  perSecond: number;
  /** Refused attempts a principal may make at once. */
  burst: number;
  /** Identical refusals within this many seconds of the first are folded into one summary event. */
  foldSeconds: number;
}

interface Who {
  principal: Principal | null;
  requestId: string;
}

// The refusals of one key within one window: the first is written at once, the rest are counted.
interface Fold {
  who: Who;
  attempt: DeniedAttempt;
  firstAt: Date;
  lastAt: Date;
  closesAt: number;
  /** Refusals after the first, not yet written. */
  count: number;
  /** Of those, how many were answered RATE_LIMITED. */
  rateLimited: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const MAX_BUCKETS = 100_000;
const RATE_LIMITED_REASON = 'Refused past the principal\'s rate of refusals (answered RATE_LIMITED)';

/**
 * Records refused attempts in the audit chain without letting a caller flood it:
 * - every refusal takes a token from its principal's bucket (`burst`, refilled at `perSecond`);
 *   a principal whose bucket is empty is answered RATE_LIMITED (with the seconds to wait), and
 *   nothing is written for that request while it waits;
 * - identical refusals (same principal, action, subject and reason) within `foldSeconds` of the
 *   first are counted, not written: the first is written at once, and when the window closes one
 *   more event carries how many followed (`after.count`), hash-chained like every other event.
 *   Refusals answered RATE_LIMITED are counted in the same way (per principal, action and subject
 *   type when their own key has no open window).
 *
 * Folding is per process: with several API instances behind a load balancer each folds what it
 * sees, so one key yields at most two events per window per instance. Nothing here depends on
 * Redis, so refusals are recorded while Redis is down.
 */
export class DenialRecorder {
  private readonly folds = new Map<string, Fold>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: DataSource,
    private readonly log: Logger,
    readonly settings: DenialSettings,
  ) {
    // A failed flush is logged by flush() itself and retried on the next tick.
    this.timer = setInterval(() => this.flush(false).catch(() => undefined), Math.max(250, Math.min(5000, (settings.foldSeconds * 1000) / 4)));
    this.timer.unref();
  }

  /**
   * Records one refused attempt. Returns 0, or the whole seconds the principal is to wait when it
   * has been refused too often (then it is answered RATE_LIMITED).
   */
  async record(who: Who, attempt: DeniedAttempt): Promise<number> {
    const now = Date.now();
    const principalKey = who.principal ? `${who.principal.kind}:${who.principal.id}` : 'anonymous';
    const wait = this.take(principalKey, now);
    const key = JSON.stringify([principalKey, attempt.action, attempt.subjectType, attempt.subjectId ?? null, attempt.reason, attempt.after ?? null]);
    const open = this.openFold(key, now);
    if (open) {
      this.count(open, who, wait > 0);
      return wait;
    }
    if (wait > 0) {
      // Past the rate nothing is written now: the refusal is counted under its principal and action.
      const limitedKey = JSON.stringify([principalKey, attempt.action, attempt.subjectType, 'RATE_LIMITED']);
      const fold = this.openFold(limitedKey, now) ?? this.startFold(limitedKey, who, { action: attempt.action, subjectType: attempt.subjectType, subjectId: null, reason: RATE_LIMITED_REASON }, now);
      this.count(fold, who, true);
      return wait;
    }
    const closed = this.takeClosed(key);
    const fold = this.startFold(key, who, attempt, now);
    try {
      await this.db.transaction(async (em) => {
        if (closed) await appendAudit(em, closed.who, summaryOf(closed));
        await appendAudit(em, who, { ...attempt, decision: AuditDecision.DENIED });
      });
    } catch (e) {
      // Not on record: the next identical refusal must be written, not folded into nothing.
      if (this.folds.get(key) === fold) this.folds.delete(key);
      if (closed) this.folds.set(`${key}#${closed.firstAt.getTime()}`, { ...closed, closesAt: 0 });
      throw e;
    }
    return 0;
  }

  /** Writes the summary of every window that has closed (`all`: of every window, at shutdown). */
  flush(all = true): Promise<void> {
    const run = this.flushing.then(async () => {
      const now = Date.now();
      const due: Fold[] = [];
      for (const [key, fold] of this.folds) {
        if (!all && fold.closesAt > now) continue;
        this.folds.delete(key);
        if (fold.count > 0) due.push(fold);
      }
      // Full buckets carry nothing a fresh one would not.
      for (const [key, b] of this.buckets) {
        if (all || b.tokens + ((now - b.at) / 1000) * this.settings.perSecond >= this.settings.burst) this.buckets.delete(key);
      }
      if (!due.length) return;
      try {
        await this.db.transaction(async (em) => {
          for (const fold of due) await appendAudit(em, fold.who, summaryOf(fold));
        });
      } catch (e) {
        // Kept for the next flush: the counts are not dropped because the database was unavailable.
        for (const fold of due) this.folds.set(`${JSON.stringify([fold.attempt, fold.firstAt.getTime()])}#retry`, { ...fold, closesAt: 0 });
        throw e;
      }
    });
    this.flushing = run.catch((e) => this.log.error({ err: e }, 'could not write folded audit events'));
    return run;
  }

  /** Stops the timer and writes every pending summary. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
  }

  // 0 when a token was taken, else the whole seconds until one is available.
  private take(key: string, now: number): number {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
      this.buckets.set(key, (b = { tokens: this.settings.burst, at: now }));
    }
    b.tokens = Math.min(this.settings.burst, b.tokens + ((now - b.at) / 1000) * this.settings.perSecond);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.settings.perSecond));
  }

  private openFold(key: string, now: number): Fold | undefined {
    const fold = this.folds.get(key);
    return fold && fold.closesAt > now ? fold : undefined;
  }

  private takeClosed(key: string): Fold | undefined {
    const fold = this.folds.get(key);
    if (!fold) return undefined;
    this.folds.delete(key);
    return fold.count > 0 ? fold : undefined;
  }

  private startFold(key: string, who: Who, attempt: DeniedAttempt, now: number): Fold {
    const closed = this.takeClosed(key);
    // A closed window still holding counts is written by the next flush (kept under a key of its own).
    if (closed) this.folds.set(`${key}#${closed.firstAt.getTime()}`, { ...closed, closesAt: 0 });
    const fold: Fold = { who, attempt, firstAt: new Date(now), lastAt: new Date(now), closesAt: now + this.settings.foldSeconds * 1000, count: 0, rateLimited: 0 };
    this.folds.set(key, fold);
    return fold;
  }

  private count(fold: Fold, who: Who, limited: boolean): void {
    fold.count += 1;
    if (limited) fold.rateLimited += 1;
    fold.lastAt = new Date();
    fold.who = who;
  }
}

/** The event that stands for the refusals a window folded. */
function summaryOf(fold: Fold): AuditEntry {
  return {
    ...fold.attempt,
    decision: AuditDecision.DENIED,
    after: {
      ...fold.attempt.after,
      count: fold.count,
      rateLimited: fold.rateLimited,
      firstAt: fold.firstAt.toISOString(),
      lastAt: fold.lastAt.toISOString(),
    },
  };
}
