import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import { authenticate } from '../access/authenticate';
import type { AppServices, RequestContext } from '../core/context';
import { CoreReason } from '../core/error-reasons';
import { AppError, badInput, ErrorCode, toClientError, unauthenticated } from '../core/errors';
import type { Logger } from '../core/logger';
import { checkQueryLimits, withoutSuggestions, type QueryLimits } from '../core/query-limits';
import { eventContext } from '../core/subscription-context';
import { operationKey, SubscriptionFanout, type FanoutMember } from '../core/subscription-fanout';
import { SubscriptionGuard, type LiveSocket } from '../core/subscription-guard';
import { contextFor } from './request-context';

export interface GraphqlWebSocket {
  wsServer: WebSocketServer;
  guard: SubscriptionGuard;
  /** Shares each event's execution among the subscribers of one operation and access class; holds the subscription metrics. */
  fanout: SubscriptionFanout;
  /**
   * Ends every operation and closes every connection with 1001 (going away), called while the
   * HTTP server drains; a client that has not answered the close within `graceMs` is cut off.
   */
  dispose(graceMs: number): Promise<void>;
}

/**
 * GraphQL over WebSocket (graphql-ws) at /graphql on the same HTTP server: every operation is
 * authenticated, validated and limited like an HTTP request, and live subscriptions end when
 * their credential or rights do.
 */
export function graphqlWebSocket(
  httpServer: Server,
  app: AppServices,
  schema: GraphQLSchema,
  opts: { validationRules: ValidationRule[]; limits: QueryLimits; log: Logger },
): GraphqlWebSocket {
  const { config } = app;
  const { validationRules, limits, log } = opts;
  // noServer: upgrades are routed here by hand, so the http server's own errors (EADDRINUSE) stay its own.
  const wsServer = new WebSocketServer({ noServer: true, maxPayload: config.bodyLimitBytes });
  httpServer.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/graphql') {
      socket.destroy();
      return;
    }
    wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit('connection', ws, req));
  });
  // Live subscriptions end when their credential or rights do (see SubscriptionGuard). The guard
  // reads rights past the principal cache: it checks again on the very event that clears the cache,
  // and must not be answered from it before it is cleared.
  const guard = new SubscriptionGuard({ authenticate: (authorization) => authenticate(authorization, app.db, config), log });
  guard.follow(app.events!);
  const fanout = new SubscriptionFanout();
  // Where each running subscription's events go, by the operation's own context (set at subscribe).
  const outlets = new WeakMap<RequestContext, Outlet>();
  const wsCleanup = useServer<Record<string, unknown>, { authorization?: string; live?: LiveSocket }>(
    {
      schema,
      subscribe: (args) => subscribeEventByEvent(args, fanout, outlets.get(args.contextValue as RequestContext) ?? null),
      // Authenticated at connection_init: a refused or missing credential closes the socket (4403;
      // a refused one with the reason of its refusal).
      onConnect: async (socket) => {
        const params = socket.connectionParams ?? {};
        const header = typeof params.authorization === 'string' ? params.authorization : typeof params.Authorization === 'string' ? params.Authorization : undefined;
        const ws = socket.extra.socket;
        const live = await guard.connect(header, (code, reason) => ws.close(code, reason), () => ws.readyState === WebSocket.OPEN);
        if (!live) return false;
        socket.extra.authorization = header;
        socket.extra.live = live;
        return true;
      },
      onClose: (socket) => {
        if (socket.extra.live) guard.disconnected(socket.extra.live);
      },
      // Every operation is treated like an HTTP request: the credential is checked again (a key
      // revoked or a token expired while the socket was open stops working), then the same
      // validation and limits, with the caller's own context and fresh loaders.
      onSubscribe: async (socket, id, payload) => {
        let ctx = await contextFor(app, socket.extra.authorization, randomUUID());
        const refuse = (e: GraphQLError) => [new GraphQLError(e.message, { extensions: toClientError(e.toJSON(), ctx.requestId).extensions })];
        if (!ctx.principal) return refuse(ctx.authError ?? unauthenticated());
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (e) {
          return refuse(badInput((e as Error).message, { reason: CoreReason.GRAPHQL_PARSE_FAILED }));
        }
        const invalid = validate(schema, document, [...specifiedRules, ...validationRules]);
        if (invalid.length) {
          return invalid.map(
            (e) =>
              new GraphQLError(config.isProduction ? withoutSuggestions(e.message) : e.message, {
                extensions: { code: ErrorCode.BAD_USER_INPUT, reason: typeof e.extensions.reason === 'string' ? e.extensions.reason : CoreReason.GRAPHQL_VALIDATION_FAILED, requestId: ctx.requestId },
              }),
          );
        }
        const operation = getOperationAST(document, payload.operationName);
        if (!operation) return refuse(badInput('No operation to run', { reason: CoreReason.GRAPHQL_VALIDATION_FAILED }));
        try {
          checkQueryLimits(schema, document, operation, payload.variables ?? undefined, limits);
        } catch (e) {
          return refuse(e as GraphQLError);
        }
        // A subscription's rights are held by the guard for as long as it runs, not by its context.
        if (operation.operation === 'subscription') {
          ctx = guard.open(socket.extra.live!, ctx, document, payload.operationName);
          outlets.set(ctx, { socket: socket.extra.socket, id, maxBufferedBytes: config.wsMaxBufferedBytes, log });
        }
        return { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue: ctx };
      },
      onOperation: (socket, _id, _payload, args, result) =>
        typeof (result as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function'
          ? guard.track(args.contextValue as RequestContext, result as AsyncIterable<ExecutionResult>)
          : undefined,
      onNext: (socket, _id, _payload, args, result) => {
        if (!keepsUp(socket.extra.socket, config.wsMaxBufferedBytes, log)) return;
        if (!result.errors?.length) return;
        const ctx = args.contextValue as RequestContext;
        for (const e of result.errors) {
          if (!(e.originalError instanceof AppError) && !e.extensions?.code) ctx.log.error({ err: e.originalError ?? e, path: e.path }, 'unexpected error');
        }
        return { ...result, errors: result.errors.map((e) => toClientError(e.toJSON(), ctx.requestId)) };
      },
      onError: (_ctx, _id, _payload, errors) => {
        log.warn({ errors: errors.map((e) => e.message) }, 'websocket operation refused');
      },
    },
    wsServer,
  );
  return {
    wsServer,
    guard,
    fanout,
    async dispose(graceMs) {
      const cutOff = setTimeout(() => {
        for (const client of wsServer.clients) client.terminate();
      }, graceMs);
      try {
        await wsCleanup.dispose();
      } finally {
        clearTimeout(cutOff);
      }
    },
  };
}

/** The close code for a client that does not read its socket (too much unread data held for it). */
const SLOW_CONSUMER_CLOSE_CODE = 4429;

/**
 * False, after closing it with {@link SLOW_CONSUMER_CLOSE_CODE}, when more than `maxBufferedBytes`
 * wait unsent on `ws`: a client that does not read is disconnected before its backlog grows unbounded.
 */
function keepsUp(ws: WebSocket, maxBufferedBytes: number, log: Logger): boolean {
  if (ws.bufferedAmount <= maxBufferedBytes) return true;
  log.warn({ buffered: ws.bufferedAmount }, 'slow WebSocket consumer disconnected');
  ws.close(SLOW_CONSUMER_CLOSE_CODE, 'Slow consumer: too much unread data');
  return false;
}

/** Where a subscription's results are written: its socket and its subscription id. */
interface Outlet {
  socket: WebSocket;
  id: string;
  maxBufferedBytes: number;
  log: Logger;
}

/**
 * A subscription whose events are each executed with a context of their own (see
 * {@link eventContext}): the operation's context never changes, yet every event, its nested fields
 * included, is answered with the caller's rights as they are now and with loaders of its own. The
 * execution itself is shared with the subscribers of the same operation whose rights for the event
 * are the same (see {@link SubscriptionFanout}), and so is its serialisation: a shared result
 * without errors is written to the socket here as the message serialised once for all of them
 * (under this subscription's id), waiting, as graphql-ws does, until the socket has taken it.
 * Results with errors are handed to graphql-ws (and its `onNext`, which makes them client errors).
 */
async function subscribeEventByEvent(args: ExecutionArgs, fanout: SubscriptionFanout, outlet: Outlet | null): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in source)) return source;
  const ctx = args.contextValue as RequestContext;
  const member: FanoutMember = { operation: operationKey(args.document, args.operationName, args.variableValues), personal: false };
  const events = source[Symbol.asyncIterator]();
  // Set once the operation is over (completed by the client, ended by the guard, socket closed):
  // nothing more is written for it, whatever was in flight.
  let over = false;
  const result = async (r: IteratorResult<unknown>): Promise<IteratorResult<ExecutionResult>> => {
    if (r.done) return { done: true, value: undefined };
    try {
      const now = await eventContext(ctx, 'when-due');
      return { done: false, value: await fanout.execute(r.value, member, now, async (c) => execute({ ...args, rootValue: r.value, contextValue: c })) };
    } catch (e) {
      await events.return?.().catch(() => undefined);
      throw e;
    }
  };
  // Results written here never come back to graphql-ws: its next() returns only at the end, or with a result it must send itself.
  const answer = async (first: IteratorResult<unknown>): Promise<IteratorResult<ExecutionResult>> => {
    for (let r = first; ; r = await events.next()) {
      if (over) return { done: true, value: undefined };
      const answered = await result(r);
      if (answered.done || !outlet || answered.value.errors?.length) return answered;
      if (over) return { done: true, value: undefined };
      const ws = outlet.socket;
      if (ws.readyState !== WebSocket.OPEN || !keepsUp(ws, outlet.maxBufferedBytes, outlet.log)) continue;
      const message = fanout.nextMessage(outlet.id, answered.value);
      await new Promise<void>((resolve, reject) => ws.send(message, (e) => (e ? reject(e) : resolve())));
    }
  };
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => answer(await events.next()),
    return: async () => {
      over = true;
      await events.return?.();
      return { done: true, value: undefined };
    },
    throw: async (e?: unknown) => answer(await (events.throw ? events.throw(e) : Promise.reject(e))),
  };
  return iterator;
}
