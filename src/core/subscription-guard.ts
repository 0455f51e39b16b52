import { randomUUID } from 'node:crypto';
import { getOperationAST, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import type { AppAbility, Principal } from './ability';
import { auditDenied } from './audit/audit-chain';
import type { LiveRights, RequestContext, Rights } from './context';
import { AppError, ErrorCode, unauthenticated } from './errors';
import { TOPICS, type EventBus } from './events';
import type { Logger } from './logger';
import { authorizeField, subscriptionPolicy, type PolicySpec } from './policy';
import { CoreReason } from './error-reasons';

/**
 * The WebSocket close code when the credential a socket was opened with stops authenticating (an
 * API key revoked or expired, a token expired): every subscription on it ends. graphql-ws clients
 * do not reconnect on it; connect again with a valid credential.
 */
export const CREDENTIAL_ENDED_CLOSE_CODE = 4401;

/** The WebSocket close code when the credential sent at `connection_init` is missing or refused (graphql-ws's Forbidden). */
export const CREDENTIAL_REFUSED_CLOSE_CODE = 4403;

/** What a credential is worth now. */
export interface Credential {
  principal: Principal | null;
  ability: AppAbility;
  error: AppError | null;
  /** When it stops being valid on its own; null when never. */
  expiresAt: Date | null;
}

/** One open, acknowledged WebSocket, as the guard follows it. */
export interface LiveSocket {
  readonly authorization: string;
}

/** A subscription the guard follows: the holder of its rights (its context never changes). */
interface Operation extends LiveRights {
  socket: Socket;
  fields: string[];
  /** The operation's own context (with this operation as its `live`). */
  ctx: RequestContext;
  /** The rights as last checked, when, and the access epoch they were checked in. */
  rights: Rights;
  checkedEpoch: number;
  dueAt: number;
  /** Ends the operation's stream (set once it is tracked). */
  stop: ((error: AppError) => void) | null;
  ended: AppError | null;
}

interface Socket extends LiveSocket {
  close(code: number, reason: string): void;
  operations: Set<Operation>;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

/** How long one event-driven check of a credential serves other operations of that credential (see `sharedCredential`). */
const SHARED_CHECK_MS = 1_000;

/** How long an operation's checked rights are trusted for its events without an access change: 5 to 10 s, spread. */
const eventRecheckMs = () => 5_000 + Math.random() * 5_000;

export interface SubscriptionGuardOptions {
  /** Establishes what an Authorization header is worth now (one database round trip at most). */
  authenticate(authorization: string): Promise<Credential>;
  log: Logger;
  /**
   * At most this long between two checks of a socket's credential when nothing else triggers one
   * (edits made outside the API, a missed access-change event); spread by up to a fifth.
   */
  recheckMs?: number;
}

/**
 * Ends live subscriptions whose credential or rights are gone, instead of letting them run on and
 * answer each event with a refusal. Every open socket's credential is checked again when access
 * changes anywhere (roles or keys, from every instance), when the credential expires, and at least
 * every `recheckMs`; a subscription's own events check it again too (through its context's
 * `live`, see `eventContext`). A credential that no longer authenticates closes the socket
 * with {@link CREDENTIAL_ENDED_CLOSE_CODE}; a principal that lost the right to a subscription's
 * root field (or, as its resolver finds at an event, to read the object it follows) sees that one
 * subscription end with an `error` message (FORBIDDEN, `SUBSCRIPTION_RIGHT_LOST`), its socket and
 * other subscriptions staying open. Both are audited as denials (`subscriptionEnded`).
 */
export class SubscriptionGuard {
  private readonly sockets = new Set<Socket>();
  private readonly recheckMs: number;
  private stopFollowing: (() => void) | null = null;
  private sweeping: Promise<void> | null = null;
  private sweepAgain = false;
  /** Bumped by every access change: rights checked in an older epoch are due another check. */
  private epoch = 0;
  /** Credential checks asked for by events, shared by the operations of one credential (see {@link sharedCredential}). */
  private readonly eventChecks = new Map<string, { epoch: number; startedAt: number; credential: Promise<Credential> }>();

  constructor(private readonly options: SubscriptionGuardOptions) {
    this.recheckMs = options.recheckMs ?? 60_000;
  }

  /** Checks every socket again each time access changes (an ACCESS_CHANGED event, from any instance). */
  follow(bus: EventBus): void {
    const iterator = bus.subscribe(TOPICS.accessChanged, 'all')[Symbol.asyncIterator]();
    let stopped = false;
    void (async () => {
      while (!stopped) {
        const next = await iterator.next().catch(() => ({ done: true as const, value: undefined }));
        if (next.done) return;
        this.epoch += 1;
        this.sweep();
      }
    })();
    this.stopFollowing = () => {
      stopped = true;
      void iterator.return?.();
    };
  }

  /** How many sockets are followed now (each with its recheck timer). */
  get followed(): number {
    return this.sockets.size;
  }

  /**
   * A socket asks to be acknowledged with `authorization`: null when the credential is refused or
   * the socket is no longer open, else the socket, followed from now on. `close` closes the
   * WebSocket with a code and a reason; `isOpen` says whether it is still open. A refused
   * credential closes it with {@link CREDENTIAL_REFUSED_CLOSE_CODE} and
   * `Forbidden: <reason>: <message>` (the reason of the refusal, as over HTTP).
   */
  async connect(authorization: string | undefined, close: (code: number, reason: string) => void, isOpen: () => boolean): Promise<LiveSocket | null> {
    if (!authorization) return null;
    const credential = await this.options.authenticate(authorization);
    if (!credential.principal) {
      const error = credential.error ?? unauthenticated();
      if (isOpen()) close(CREDENTIAL_REFUSED_CLOSE_CODE, closeReason(`Forbidden: ${error.details.reason ?? error.code}: ${error.message}`));
      return null;
    }
    // A socket that closed while its credential was checked has already had its close handled,
    // with nothing to disconnect: following it now would keep it, and its timer, for good.
    if (!isOpen()) return null;
    const socket: Socket = { authorization, close, operations: new Set(), timer: null, closed: false };
    this.sockets.add(socket);
    this.schedule(socket, credential.expiresAt);
    return socket;
  }

  /** The socket closed: nothing more to follow. */
  disconnected(live: LiveSocket): void {
    const socket = live as Socket;
    socket.closed = true;
    if (socket.timer) clearTimeout(socket.timer);
    this.sockets.delete(socket);
  }

  /**
   * A subscription begins on `live` with `ctx` (the caller as just authenticated): the operation's
   * context, whose `live` holds its rights from now on (checked again by the guard and by its events).
   */
  open(live: LiveSocket, ctx: RequestContext, document: DocumentNode, operationName: string | null | undefined): RequestContext {
    const socket = live as Socket;
    const op: Operation = {
      socket,
      fields: rootFields(document, operationName),
      ctx,
      rights: { principal: ctx.principal!, ability: ctx.ability },
      checkedEpoch: this.epoch,
      dueAt: Date.now() + eventRecheckMs(),
      stop: null,
      ended: null,
      current: () => ({ ...op.rights, due: op.checkedEpoch !== this.epoch || Date.now() > op.dueAt }),
      recheck: () => this.recheckOperation(op),
      end: (reason) => this.endOperationOf(op, reason),
    };
    op.ctx = { ...ctx, live: op };
    return op.ctx;
  }

  /**
   * Follows a running subscription (its context made by {@link open}): the returned stream is
   * `source` until the guard ends it, then it throws the reason (graphql-ws sends it as the
   * operation's `error` message).
   */
  track<T>(ctx: RequestContext, source: AsyncIterable<T>): AsyncIterable<T> {
    const op = ctx.live as Operation;
    const { iterator, end } = endable(source, () => op.socket.operations.delete(op));
    op.stop = end;
    if (op.ended) end(op.ended);
    else op.socket.operations.add(op);
    return iterator;
  }

  /** For `LiveRights.recheck`: the credential and the operation's root fields again; throws, after ending them, when either no longer holds. */
  private async recheckOperation(op: Operation): Promise<Rights> {
    const epoch = this.epoch;
    const credential = await this.sharedCredential(op.socket.authorization);
    if (!credential.principal) {
      const error = credential.error ?? unauthenticated();
      await this.endSocket(op.socket, error);
      // Not yet followed (its subscription still starting): it ends here.
      await this.endOperation(op, error, subscriptionPolicy(op.fields[0] ?? ''));
      throw error;
    }
    const denied = await this.checkOperation(op, credential, epoch);
    if (denied) throw denied;
    return op.rights;
  }

  /**
   * What `authorization` is worth now, for an event's check: one check of a credential serves every
   * operation whose event asks for one while it runs or within {@link SHARED_CHECK_MS} after it
   * began, in the same access epoch (no access change seen since it began) and before the credential
   * expires. A thousand subscriptions of one credential that fall due together cost one database
   * round trip, not a thousand; none is answered from a check older than that, or from before an
   * access change. A check that failed is not shared.
   */
  private sharedCredential(authorization: string): Promise<Credential> {
    const now = Date.now();
    const known = this.eventChecks.get(authorization);
    if (known && known.epoch === this.epoch && now - known.startedAt < SHARED_CHECK_MS) return known.credential;
    if (this.eventChecks.size >= 1000) for (const [k, v] of this.eventChecks) if (now - v.startedAt >= SHARED_CHECK_MS) this.eventChecks.delete(k);
    const credential = this.options.authenticate(authorization).then((c) => {
      // Expired meanwhile: the next event checks again (and finds it expired).
      if (c.expiresAt && c.expiresAt.getTime() <= Date.now() + SHARED_CHECK_MS && this.eventChecks.get(authorization)?.credential === credential) this.eventChecks.delete(authorization);
      return c;
    });
    const entry = { epoch: this.epoch, startedAt: now, credential };
    this.eventChecks.set(authorization, entry);
    credential.catch(() => this.eventChecks.get(authorization) === entry && this.eventChecks.delete(authorization));
    return credential;
  }

  /**
   * For `LiveRights.end`: the principal may no longer read what the operation follows (its root
   * field still allowed), so it ends as if it had lost the field. Returns the error it ended with.
   */
  private async endOperationOf(op: Operation, reason: string): Promise<AppError> {
    const field = op.fields[0] ?? 'subscription';
    const error = new AppError(ErrorCode.FORBIDDEN, `The subscription to ${field} ended: ${reason}`, { reason: CoreReason.SUBSCRIPTION_RIGHT_LOST });
    await this.endOperation(op, error, subscriptionPolicy(field));
    return error;
  }

  /** Stops following access changes and every timer (the sockets themselves are closed by their server). */
  close(): void {
    this.stopFollowing?.();
    this.eventChecks.clear();
    for (const socket of this.sockets) if (socket.timer) clearTimeout(socket.timer);
    this.sockets.clear();
  }

  private schedule(socket: Socket, expiresAt: Date | null): void {
    if (socket.closed) return;
    if (socket.timer) clearTimeout(socket.timer);
    let delay = this.recheckMs * (0.8 + Math.random() * 0.2);
    // Just past the expiry, so that the check sees the credential expired.
    if (expiresAt) delay = Math.min(delay, Math.max(0, expiresAt.getTime() - Date.now() + 50));
    socket.timer = setTimeout(() => void this.recheck([socket]), delay);
    socket.timer.unref();
  }

  /** Every socket again, coalescing access changes that arrive while a sweep runs. */
  private sweep(): void {
    if (this.sweeping) {
      this.sweepAgain = true;
      return;
    }
    this.sweeping = (async () => {
      do {
        this.sweepAgain = false;
        // One authentication per distinct credential, however many sockets share it.
        const byCredential = new Map<string, Socket[]>();
        for (const s of this.sockets) byCredential.set(s.authorization, [...(byCredential.get(s.authorization) ?? []), s]);
        const groups = [...byCredential.values()];
        const width = 4;
        for (let i = 0; i < groups.length; i += width) await Promise.all(groups.slice(i, i + width).map((g) => this.recheck(g)));
      } while (this.sweepAgain);
    })().finally(() => (this.sweeping = null));
  }

  /** Sockets sharing one credential: checks it once and ends what no longer holds. */
  private async recheck(sockets: Socket[]): Promise<void> {
    const open = sockets.filter((s) => !s.closed);
    if (!open.length) return;
    const epoch = this.epoch;
    let credential: Credential;
    try {
      credential = await this.options.authenticate(open[0].authorization);
    } catch (e) {
      // The database is away: the credential cannot be judged now; try again at the next check.
      this.options.log.warn({ err: (e as Error).message }, 'subscription credential check failed');
      for (const s of open) this.schedule(s, null);
      return;
    }
    for (const socket of open) {
      if (!credential.principal) {
        await this.endSocket(socket, credential.error ?? unauthenticated());
        continue;
      }
      this.schedule(socket, credential.expiresAt);
      for (const op of [...socket.operations]) await this.checkOperation(op, credential, epoch);
    }
  }

  /** Records the operation's fresh rights; ends it when its root fields are no longer allowed. */
  private async checkOperation(op: Operation, credential: Credential, epoch: number): Promise<AppError | null> {
    op.rights = { principal: credential.principal!, ability: credential.ability };
    op.checkedEpoch = epoch;
    op.dueAt = Date.now() + eventRecheckMs();
    const now = { ...op.ctx, ...op.rights, authError: credential.error };
    for (const field of op.fields) {
      const spec = subscriptionPolicy(field);
      if (!spec) continue;
      try {
        authorizeField(now, spec);
      } catch (e) {
        const error = new AppError(ErrorCode.FORBIDDEN, `The subscription to ${field} ended: ${(e as Error).message}`, { reason: CoreReason.SUBSCRIPTION_RIGHT_LOST });
        await this.endOperation(op, error, spec);
        return error;
      }
    }
    return null;
  }

  private async endOperation(op: Operation, error: AppError, spec: PolicySpec | undefined): Promise<void> {
    if (op.ended) return;
    op.ended = error;
    op.stop?.(error);
    await this.audit(op.ctx, error, spec);
  }

  private async endSocket(socket: Socket, error: AppError): Promise<void> {
    if (socket.closed) return;
    this.disconnected(socket);
    // Closed first: nothing more reaches the client, whatever is in flight.
    socket.close(CREDENTIAL_ENDED_CLOSE_CODE, closeReason(`Unauthorized: ${error.message}`));
    for (const op of [...socket.operations]) await this.endOperation(op, error, subscriptionPolicy(op.fields[0] ?? ''));
  }

  private async audit(ctx: RequestContext, error: AppError, spec: PolicySpec | undefined): Promise<void> {
    const subjectType = spec && 'subject' in spec && spec.subject !== 'any' ? spec.subject : 'Subscription';
    try {
      await auditDenied(ctx.app.db, { ...ctx, requestId: randomUUID() }, { action: 'subscriptionEnded', subjectType, reason: error.message });
    } catch (e) {
      this.options.log.error({ err: (e as Error).message }, 'ended subscription not audited');
    }
  }
}

/** A WebSocket close reason is at most 123 bytes of UTF-8. */
function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

/** The root fields an operation selects, through fragments. */
export function rootFields(document: DocumentNode, operationName: string | null | undefined): string[] {
  const operation = getOperationAST(document, operationName);
  if (!operation) return [];
  const fragments = new Map(
    document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((f) => [f.name.value, f]),
  );
  const fields = new Set<string>();
  const seen = new Set<string>();
  const sets: SelectionSetNode[] = [operation.selectionSet];
  while (sets.length) {
    for (const sel of sets.pop()!.selections) {
      if (sel.kind === Kind.FIELD) fields.add(sel.name.value);
      else if (sel.kind === Kind.INLINE_FRAGMENT) sets.push(sel.selectionSet);
      else if (!seen.has(sel.name.value)) {
        seen.add(sel.name.value);
        const fragment = fragments.get(sel.name.value);
        if (fragment) sets.push(fragment.selectionSet);
      }
    }
  }
  return [...fields];
}

/**
 * `source`, until `end(error)`: then the pending and every later `next` throws `error` (once), and
 * the source is released without waiting on it (it may be parked on an event that never comes).
 */
function endable<T>(source: AsyncIterable<T>, onFinish: () => void): { iterator: AsyncIterableIterator<T>; end(error: AppError): void } {
  const inner = source[Symbol.asyncIterator]();
  let endedWith: AppError | null = null;
  let finished = false;
  let interrupt: ((error: AppError) => void) | null = null;
  const interrupted = new Promise<never>((_, reject) => (interrupt = reject));
  interrupted.catch(() => undefined);
  const finish = () => {
    if (finished) return;
    finished = true;
    onFinish();
    void Promise.resolve(inner.return?.()).catch(() => undefined);
  };
  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    async next() {
      if (endedWith && !finished) {
        finish();
        throw endedWith;
      }
      if (finished) return { done: true, value: undefined };
      let result: IteratorResult<T>;
      try {
        result = await Promise.race([inner.next(), interrupted]);
      } catch (e) {
        finish();
        // Ended meanwhile: the reason of the end, not whatever the source failed with.
        throw endedWith ?? e;
      }
      if (endedWith) {
        finish();
        throw endedWith;
      }
      if (result.done) finish();
      return result;
    },
    async return() {
      finish();
      return { done: true, value: undefined };
    },
    async throw(e?: unknown) {
      finish();
      throw e;
    },
  };
  return {
    iterator,
    end(error) {
      if (finished || endedWith) return;
      endedWith = error;
      interrupt!(error);
    },
  };
}
