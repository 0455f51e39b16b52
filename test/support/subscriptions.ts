import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** A graphql-ws socket opened by a test, and what became of it. */
export interface Socket {
  readonly client: Client;
  /** Resolves when the server acknowledged the connection (`connection_ack`); rejects when the socket closed first. */
  readonly acknowledged: Promise<void>;
  /** The close code once the socket closed; null while it is open. */
  readonly closeCode: number | null;
  /** What the client reported about the connection itself (a refused or lost socket). */
  readonly errors: unknown[];
}

/** One subscription on a {@link Socket}, and everything it received, in order. */
export interface Subscription<T> {
  /** The subscribed field of each result that carried no errors. */
  readonly events: T[];
  /** The errors of each result that carried some, and the error that ended the operation, if any. */
  readonly errors: unknown[];
  /** True once the server completed the operation. */
  readonly completed: boolean;
  stop(): void;
}

/**
 * Opens a socket to `${url}/graphql` (`url` as http://…) with `token` as its bearer credential
 * (none when null). It does not retry: a refused socket stays closed, with its close code.
 */
export function connect(url: string, token: string | null): Socket {
  let closeCode: number | null = null;
  const errors: unknown[] = [];
  let ack!: () => void;
  let refuse!: (e: unknown) => void;
  const acknowledged = new Promise<void>((resolve, reject) => {
    ack = resolve;
    refuse = reject;
  });
  // Callers that expect a refusal read closeCode instead; the rejection must not go unhandled.
  acknowledged.catch(() => undefined);
  const client = createClient({
    url: url.replace(/^http/, 'ws') + '/graphql',
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: (e) => errors.push(e),
    on: {
      connected: () => ack(),
      closed: (e) => {
        closeCode = (e as { code: number }).code;
        refuse(new Error(`the socket closed (${closeCode}) before the server acknowledged it`));
      },
    },
  });
  return {
    client,
    acknowledged,
    get closeCode() {
      return closeCode;
    },
    errors,
  };
}

/** Subscribes on `socket` to `query`, whose root field is `field`. */
export function subscribe<T = any>(socket: Socket, field: string, query: string, variables?: Record<string, unknown>): Subscription<T> {
  const events: T[] = [];
  const errors: unknown[] = [];
  let completed = false;
  const stop = socket.client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (r) => {
        if (r.errors?.length) errors.push(...r.errors);
        else if (r.data && field in r.data) events.push(r.data[field]);
        else errors.push({ message: 'a result with neither data nor errors', result: r });
      },
      error: (e) => errors.push(e),
      complete: () => (completed = true),
    },
  );
  return {
    events,
    errors,
    get completed() {
      return completed;
    },
    stop,
  };
}
