import { hash } from 'node:crypto';
import type { AppServices } from '../core/context';
import { TOPICS, type EventBus } from '../core/events';
import { authenticate, type Authentication } from './authenticate';

/** Bounds of a {@link PrincipalCache}. */
export interface PrincipalCacheOptions {
  /** Credentials held at most; past it the least recently used is dropped. */
  maxEntries: number;
  /** How long a resolved principal is trusted without an access change; 0 keeps nothing. */
  ttlMs: number;
}

interface Entry {
  auth: Authentication;
  storedAt: number;
}

/**
 * The principals this process resolved, per credential, so that a request whose credential was
 * seen recently needs no SQL to know its caller. Entries are keyed by the SHA-256 of the whole
 * Authorization value (an API key with its secret, or a bearer token with its claims and
 * signature), never by the secret itself: a token re-issued with other claims is another
 * credential, resolved afresh. Only accepted credentials are kept; an entry is served until the
 * first of: its TTL, the credential's own expiry, or {@link invalidate} (every access change, from
 * any instance, through {@link follow}). A lookup that began before an invalidation is not stored,
 * so rights read before a change never outlive it.
 */
export class PrincipalCache {
  private readonly entries = new Map<string, Entry>();
  /** Lookups in flight, shared by concurrent requests with one credential (in the current generation only). */
  private readonly pending = new Map<string, Promise<Authentication>>();
  /** Bumped by every invalidation: a lookup that started in an older generation is not kept. */
  private generation = 0;
  private stopFollowing: (() => void) | null = null;

  constructor(private readonly options: PrincipalCacheOptions) {}

  /** Credentials held now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * What `authorization` is worth: the cached principal when one is held and still valid, else
   * `resolve(authorization)` (its answer kept when it accepted the credential). Without a
   * credential, or with the cache turned off, always `resolve`.
   */
  async authenticate(authorization: string | undefined, resolve: (authorization: string | undefined) => Promise<Authentication>): Promise<Authentication> {
    if (!authorization || this.options.ttlMs === 0) return resolve(authorization);
    const key = hash('sha256', authorization, 'base64url');
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      if (now - entry.storedAt < this.options.ttlMs && !(entry.auth.expiresAt && entry.auth.expiresAt.getTime() <= now)) {
        this.entries.set(key, entry);
        return entry.auth;
      }
    }
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    const generation = this.generation;
    const lookup = resolve(authorization).then((auth) => {
      if (auth.principal && generation === this.generation) this.store(key, auth);
      return auth;
    });
    this.pending.set(key, lookup);
    const release = () => {
      if (this.pending.get(key) === lookup) this.pending.delete(key);
    };
    lookup.then(release, release);
    return lookup;
  }

  /** Forgets every principal (and every lookup in flight): the next request of each credential reads its rights again. */
  invalidate(): void {
    this.generation += 1;
    this.entries.clear();
    this.pending.clear();
  }

  /**
   * Invalidates on every access change published on `bus`, from any instance, until {@link close}.
   * Should the bus end the stream, the cache is invalidated and follows a new one a second later.
   */
  follow(bus: EventBus): void {
    let stopped = false;
    let iterator: AsyncIterator<{ id: string }> | null = null;
    let retry: NodeJS.Timeout | null = null;
    const listen = async () => {
      iterator = bus.subscribe(TOPICS.accessChanged, 'all')[Symbol.asyncIterator]();
      for (;;) {
        const next = await iterator.next().catch(() => ({ done: true as const, value: undefined }));
        if (stopped) return;
        this.invalidate();
        if (next.done) break;
      }
      retry = setTimeout(() => void listen(), 1000);
      retry.unref();
    };
    void listen();
    this.stopFollowing = () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      void iterator?.return?.();
    };
  }

  /** Stops following access changes and forgets everything. */
  close(): void {
    this.stopFollowing?.();
    this.stopFollowing = null;
    this.invalidate();
  }

  private store(key: string, auth: Authentication): void {
    this.entries.set(key, { auth, storedAt: Date.now() });
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}

declare module '../core/context' {
  interface AppServices {
    /** Principals resolved per credential (API processes); without it, every request reads them. */
    principalCache?: PrincipalCache;
  }
}

/**
 * Establishes who is calling from an Authorization header value, through the process's principal
 * cache when it has one (see {@link authenticate} for what a credential is worth).
 */
export function authenticateRequest(app: AppServices, authorization: string | undefined): Promise<Authentication> {
  const fresh = (value: string | undefined) => authenticate(value, app.db, app.config);
  return app.principalCache ? app.principalCache.authenticate(authorization, fresh) : fresh(authorization);
}

/**
 * After a change of what some principal may do has committed (a role, an API key, a team): this
 * process forgets its cached principals at once, and every instance (this one included) hears of
 * it on the event bus, where its principal cache and its subscription guard act on it.
 */
export function announceAccessChange(app: AppServices): void {
  app.principalCache?.invalidate();
  app.events?.publish(TOPICS.accessChanged, { id: 'all' });
}
