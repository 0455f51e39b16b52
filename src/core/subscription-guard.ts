import { randomUUID } from 'node:crypto';
import { getOperationAST, Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import type { AppAbility, Principal } from './ability';
import { auditDenied } from './audit/audit-chain';
import type { RequestContext } from './context';
import { AppError, ErrorCode, unauthenticated } from './errors';
import { TOPICS, type EventBus } from './events';
import { Loaders } from './loaders';
import type { Logger } from './logger';
import { authorizeField, subscriptionPolicy, type PolicySpec } from './policy';
import { CoreReason } from './error-reasons';

/**
 * The WebSocket close code when the credential a socket was opened with stops authenticating (an
 * API key revoked or expired, a token expired): every subscription on it ends. graphql-ws clients
 * do not reconnect on it; connect again with a valid credential.
 */
export const CREDENTIAL_ENDED_CLOSE_CODE = 4401;

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

interface Operation {
  fields: string[];
  ctx: RequestContext;
  end(error: AppError): void;
  ended: boolean;
}

interface Socket extends LiveSocket {
  close(code: number, reason: string): void;
  operations: Set<Operation>;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

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
 * every `recheckMs`; a subscription's own events check it again too (through
 * `RequestContext.reauthenticate`). A credential that no longer authenticates closes the socket
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
   * WebSocket with a code and a reason; `isOpen` says whether it is still open.
   */
  async connect(authorization: string | undefined, close: (code: number, reason: string) => void, isOpen: () => boolean): Promise<LiveSocket | null> {
    if (!authorization) return null;
    const credential = await this.options.authenticate(authorization);
    // A socket that closed while its credential was checked has already had its close handled,
    // with nothing to disconnect: following it now would keep it, and its timer, for good.
    if (!credential.principal || !isOpen()) return null;
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
   * Follows a running subscription: the returned stream is `source` until the guard ends it, then
   * it throws the reason (graphql-ws sends it as the operation's `error` message).
   */
  track<T>(live: LiveSocket, ctx: RequestContext, document: DocumentNode, operationName: string | null | undefined, source: AsyncIterable<T>): AsyncIterable<T> {
    const socket = live as Socket;
    const { iterator, end } = endable(source, () => socket.operations.delete(op));
    const op: Operation = { fields: rootFields(document, operationName), ctx, end, ended: false };
    socket.operations.add(op);
    return iterator;
  }

  /**
   * For `RequestContext.reauthenticate` of an operation on `live`: checks the credential and the
   * operation's rights again and refreshes `ctx` (principal, ability, loaders); throws, after
   * ending the socket or the operation, when either no longer holds.
   */
  async reauthenticate(live: LiveSocket, ctx: RequestContext): Promise<void> {
    const socket = live as Socket;
    const credential = await this.options.authenticate(socket.authorization);
    if (!credential.principal) {
      const error = credential.error ?? unauthenticated();
      await this.endSocket(socket, error);
      throw error;
    }
    const op = [...socket.operations].find((o) => o.ctx === ctx);
    if (!op) {
      refresh(ctx, credential);
      return;
    }
    const denied = await this.checkOperation(op, credential);
    if (denied) throw denied;
  }

  /**
   * For `RequestContext.endSubscription` of an operation on `live`: the principal may no longer
   * read what the operation follows (its root field still allowed), so it ends as if it had lost
   * the field. Returns the error it ended with.
   */
  async endOperationOf(live: LiveSocket, ctx: RequestContext, reason: string): Promise<AppError> {
    const op = [...(live as Socket).operations].find((o) => o.ctx === ctx);
    const field = op?.fields[0] ?? 'subscription';
    const error = new AppError(ErrorCode.FORBIDDEN, `The subscription to ${field} ended: ${reason}`, { reason: CoreReason.SUBSCRIPTION_RIGHT_LOST });
    if (op) await this.endOperation(op, error, subscriptionPolicy(field));
    return error;
  }

  /** Stops following access changes and every timer (the sockets themselves are closed by their server). */
  close(): void {
    this.stopFollowing?.();
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
      for (const op of [...socket.operations]) await this.checkOperation(op, credential);
    }
  }

  /** Refreshes the operation's context; ends it when its root fields are no longer allowed. */
  private async checkOperation(op: Operation, credential: Credential): Promise<AppError | null> {
    refresh(op.ctx, credential);
    for (const field of op.fields) {
      const spec = subscriptionPolicy(field);
      if (!spec) continue;
      try {
        authorizeField(op.ctx, spec);
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
    op.ended = true;
    op.end(error);
    await this.audit(op.ctx, error, spec);
  }

  private async endSocket(socket: Socket, error: AppError): Promise<void> {
    if (socket.closed) return;
    this.disconnected(socket);
    // Closed first: nothing more reaches the client, whatever is in flight.
    socket.close(CREDENTIAL_ENDED_CLOSE_CODE, closeReason(`Unauthorized: ${error.message}`));
    for (const op of socket.operations) {
      if (op.ended) continue;
      op.ended = true;
      op.end(error);
      await this.audit(op.ctx, error, subscriptionPolicy(op.fields[0] ?? ''));
    }
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

function refresh(ctx: RequestContext, credential: Credential): void {
  Object.assign(ctx, { principal: credential.principal, authError: credential.error, ability: credential.ability, loaders: new Loaders(ctx.app.db, credential.ability) });
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
