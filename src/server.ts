import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import express, { type NextFunction, type Request, type Response } from 'express';
import { getOperationAST, GraphQLError, NoSchemaIntrospectionCustomRule, parse, specifiedRules, validate, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import Redis from 'ioredis';
import { buildSchema } from 'type-graphql';
import { WebSocket, WebSocketServer } from 'ws';
import { AccessResolver } from './access/access.resolver';
import { authenticate } from './access/authenticate';
import { AuditResolver } from './audit/audit.resolver';
import { DenialRecorder } from './audit/audit-denials';
import { mountAuditExportRoutes } from './audit/audit-export.http';
import { AuditExportResolver } from './audit/audit-export.resolver';
import type { Config } from './config';
import type { AppServices, RequestContext } from './core/context';
import { openDatabase, StatementCounter } from './core/database';
import { AppError, badInput, ErrorCode, HTTP_STATUS, toClientError, unauthenticated } from './core/errors';
import { Loaders } from './core/loaders';
import { createLogger, type Logger } from './core/logger';
import { rootFieldPolicies } from './core/policy';
import { readiness } from './core/readiness';
import { TeamOwnedFieldResolver } from './core/team-owned.resolver';
import { checkQueryLimits, queryLimitsPlugin, withoutSuggestions } from './core/query-limits';
import { SubscriptionGuard, type LiveSocket } from './core/subscription-guard';
import {
  DatasetFieldResolver,
  DatasetVersionFieldResolver,
  LineageMutationResolver,
  LineageQueryResolver,
  TrainingRunFieldResolver,
} from './lineage/lineage.resolver';
import { ArtifactStore } from './registry/artifact-store';
import { ArtifactRejectedError, uploadArtifact } from './registry/artifact.service';
import {
  ApprovalFieldResolver,
  ModelFieldResolver,
  ModelVersionFieldResolver,
  RegistryMutationResolver,
  RegistryQueryResolver,
} from './registry/registry.resolver';
import { DeploymentFieldResolver, RolloutFieldResolver, RolloutResolver, RolloutsResolver, TrafficShareFieldResolver } from './rollouts/rollouts.resolver';
import { seedBaseline } from './seed/baseline';
import { LocalProcessExecutor } from './lineage/executor';
import { TrainingResolver } from './lineage/training.resolver';
import { uploadDatasetContent } from './lineage/dataset-content.service';
import { OutboxDispatcher } from './queue/dispatcher';
import { Queues } from './queue/queues';
import { createEventBus, createPubSub, type PubSub } from './core/events';
import { startWorkers } from '../jobs';
import { InferenceEngine } from './inference/inference.engine';
import { DeploymentServingResolver, InferenceResolver, PredictionFieldResolver, ServingVersionFieldResolver } from './inference/inference.resolver';
import { openInferenceRouter } from './inference/open-inference';
import { AlertFieldResolver, DeploymentMonitoringResolver, MonitoringResolver, MonitorRunFieldResolver } from './monitoring/monitoring.resolver';
import { followRunBudgets } from './monitoring/run-budget-alert.service';
import { followAccessChanges } from './monitoring/subscription-stream';
import { ErrorCatalogueResolver } from './app/error-catalogue';
import { CoreReason, type ErrorReason } from './core/error-reasons';

export const RESOLVERS = [
  AccessResolver,
  AuditResolver,
  AuditExportResolver,
  LineageQueryResolver,
  LineageMutationResolver,
  TrainingResolver,
  TeamOwnedFieldResolver,
  DatasetFieldResolver,
  DatasetVersionFieldResolver,
  TrainingRunFieldResolver,
  RegistryQueryResolver,
  RegistryMutationResolver,
  ModelFieldResolver,
  ModelVersionFieldResolver,
  ApprovalFieldResolver,
  RolloutsResolver,
  RolloutResolver,
  RolloutFieldResolver,
  DeploymentFieldResolver,
  TrafficShareFieldResolver,
  InferenceResolver,
  PredictionFieldResolver,
  ServingVersionFieldResolver,
  DeploymentServingResolver,
  MonitoringResolver,
  AlertFieldResolver,
  MonitorRunFieldResolver,
  DeploymentMonitoringResolver,
  ErrorCatalogueResolver,
] as const;

const schemas = new WeakMap<PubSub, Promise<GraphQLSchema>>();
const schemaOnly = createPubSub();

/**
 * The executable schema, bound to an event bus for its subscriptions (one per server; without
 * one, a process-local bus, for emitting the SDL). Refuses (throws) when any root field has no
 * declared policy.
 */
export function buildAppSchema(pubSub: PubSub = schemaOnly): Promise<GraphQLSchema> {
  let built = schemas.get(pubSub);
  if (!built) {
    built = (async () => {
      const schema = await buildSchema({
        resolvers: RESOLVERS as unknown as [Function, ...Function[]],
        validate: { forbidUnknownValues: false, whitelist: false },
        pubSub,
      });
      rootFieldPolicies(schema);
      return schema;
    })();
    schemas.set(pubSub, built);
  }
  return built;
}

export interface RunningServer {
  url: string;
  port: number;
  app: AppServices;
  statements: StatementCounter;
  schema: GraphQLSchema;
  /** How many WebSocket connections have their credential followed now (each with a recheck timer). */
  followedSockets(): number;
  /** Drains HTTP and WebSocket clients, then closes the pools. */
  stop(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

function requestIdOf(req: Request): string {
  const given = req.header('x-request-id');
  return given && REQUEST_ID.test(given) ? given : randomUUID();
}

function errorBody(code: ErrorCode, message: string, requestId: string, reason?: ErrorReason) {
  return { errors: [{ message, extensions: { code, requestId, ...(reason ? { reason } : {}) } }] };
}

/** Builds the per-request context from an Authorization header. */
export async function contextFor(app: AppServices, authorization: string | undefined, requestId: string): Promise<RequestContext> {
  const auth = await authenticate(authorization, app.db, app.config.jwtSecret);
  return {
    requestId,
    principal: auth.principal,
    authError: auth.error,
    ability: auth.ability,
    app,
    log: app.log.child({ requestId, principal: auth.principal?.id ?? null }),
    loaders: new Loaders(app.db, auth.ability),
    auditEvents: 0,
  };
}

function errorPlugin(log: Logger): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart({ contextValue }) {
      return {
        async didEncounterErrors({ errors }) {
          for (const e of errors) {
            const original = e.originalError;
            if (!(original instanceof AppError) && !(e instanceof AppError) && !e.extensions?.code) {
              (contextValue?.log ?? log).error({ err: original ?? e, path: e.path }, 'unexpected error');
            }
          }
        },
        async willSendResponse({ response }) {
          if (response.body.kind === 'single' && response.body.singleResult.errors) {
            const requestId = contextValue?.requestId;
            response.body.singleResult.errors = response.body.singleResult.errors.map((e) => toClientError(e, requestId));
          }
        },
      };
    },
  };
}

/**
 * Starts the whole server: database (migrated), Redis, GraphQL over HTTP and WebSocket at
 * /graphql, /artifacts, /healthz and /readyz.
 */
export interface OpenAppServices extends AppServices {
  statements: StatementCounter;
  /** Stops the dispatcher and closes every connection. */
  close(): Promise<void>;
}

/**
 * The long-lived parts a process needs, API or worker: the database (migrated), Redis, the
 * artifact store, the training executor, the queues and the outbox dispatcher, the event bus.
 */
export async function openAppServices(config: Config, log: Logger): Promise<OpenAppServices> {
  const statements = new StatementCounter();
  const db = await openDatabase(config.databaseUrl, statements);
  const redis = new Redis(config.redisUrl, { keyPrefix: config.redisPrefix, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  await redis.connect().catch((e) => log.warn({ err: (e as Error).message }, 'redis not reachable at start'));
  const queues = new Queues(config);
  const dispatcher = new OutboxDispatcher(config.databaseUrl, queues, log, { jobAttempts: config.trainingAttempts });
  const bus = createEventBus(config, log);
  const denials = new DenialRecorder(db, log, config.auditDenials);
  const app: OpenAppServices = {
    config,
    db,
    redis,
    log,
    artifacts: new ArtifactStore(config.artifactRoot, config.artifactMaxBytes),
    executor: new LocalProcessExecutor(),
    queues,
    dispatcher,
    events: bus,
    denials,
    statements,
    async close() {
      // Folded refusals still being counted are written before the database closes.
      await denials.close().catch((e) => log.error({ err: e }, 'could not write folded audit events at shutdown'));
      await dispatcher.stop();
      await queues.close();
      bus.close();
      await db.destroy();
      redis.disconnect();
    },
  };
  await seedBaseline(app);
  await dispatcher.start();
  return app;
}

export async function startServer(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  const app = await openAppServices(config, log);
  const { statements } = app;
  const workers = config.workersInProcess ? startWorkers(app) : null;
  // Every routed model version is loaded and warmed up before the server listens.
  const inference = config.inference.enabled ? new InferenceEngine(config.databaseUrl, app.artifacts, config.inference, log) : null;
  if (inference) {
    app.inference = inference;
    followRunBudgets(app, inference);
    await inference.start();
  }

  const schema = await buildAppSchema(app.events!.pubSub);
  const stopFollowingAccess = followAccessChanges(app.events!);
  const expressApp = express();
  expressApp.disable('x-powered-by');
  const httpServer = createServer(expressApp);

  // noServer: upgrades are routed here by hand, so the http server's own errors (EADDRINUSE) stay its own.
  const wsServer = new WebSocketServer({ noServer: true, maxPayload: config.bodyLimitBytes });
  httpServer.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/graphql') {
      socket.destroy();
      return;
    }
    wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit('connection', ws, req));
  });
  // Introspection is refused in production by these rules, on HTTP and WebSocket alike.
  const validationRules = config.isProduction ? [NoSchemaIntrospectionCustomRule] : [];
  const limits = { maxDepth: config.maxQueryDepth, maxCost: config.maxQueryCost, maxAliases: config.maxQueryAliases, hideSchemaDetails: config.isProduction };
  // Live subscriptions end when their credential or rights do (see SubscriptionGuard).
  const guard = new SubscriptionGuard({ authenticate: (authorization) => authenticate(authorization, app.db, config.jwtSecret), log });
  guard.follow(app.events!);
  const wsCleanup = useServer<Record<string, unknown>, { authorization?: string; live?: LiveSocket }>(
    {
      schema,
      // Authenticated at connection_init: a refused or missing credential closes the socket (4403).
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
      onSubscribe: async (socket, _id, payload) => {
        const ctx = await contextFor(app, socket.extra.authorization, randomUUID());
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
        const live = socket.extra.live!;
        ctx.reauthenticate = () => guard.reauthenticate(live, ctx);
        ctx.endSubscription = (reason) => guard.endOperationOf(live, ctx, reason);
        return { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue: ctx };
      },
      onOperation: (socket, _id, _payload, args, result) =>
        typeof (result as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function'
          ? guard.track(socket.extra.live!, args.contextValue as RequestContext, args.document, args.operationName, result as AsyncIterable<ExecutionResult>)
          : undefined,
      onNext: (socket, _id, _payload, args, result) => {
        // A client that does not read its socket is disconnected before its backlog grows unbounded.
        const ws = socket.extra.socket;
        if (ws.bufferedAmount > config.wsMaxBufferedBytes) {
          log.warn({ buffered: ws.bufferedAmount }, 'slow WebSocket consumer disconnected');
          ws.close(4429, 'Slow consumer: too much unread data');
          return;
        }
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

  const apollo = new ApolloServer<RequestContext>({
    schema,
    // Refused by `validationRules` instead, so that the WebSocket path applies the same rules.
    introspection: true,
    validationRules,
    hideSchemaDetailsFromClientErrors: config.isProduction,
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await wsCleanup.dispose();
            },
          };
        },
      },
      queryLimitsPlugin(schema, limits),
      errorPlugin(log),
      config.isProduction ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault({ embed: true }),
    ],
  });
  await apollo.start();

  expressApp.use((req, res, next) => {
    const requestId = requestIdOf(req);
    res.locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      log.info({ requestId, method: req.method, path: req.path, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'request');
    });
    next();
  });

  expressApp.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  expressApp.get('/readyz', async (req, res) => {
    const r = await readiness(app, () => contextFor(app, req.header('authorization'), res.locals.requestId));
    res.status(r.ready ? 200 : 503).json({ status: r.ready ? 'ready' : 'not ready', ...r.details });
  });

  // Prometheus metrics of this process; the scraper authenticates like any client and needs
  // `read` on `Metrics` (admin and auditor have it; give a scraper's API key a role that does).
  expressApp.get('/metrics', async (req, res, next) => {
    try {
      const ctx = await contextFor(app, req.header('authorization'), res.locals.requestId);
      if (!ctx.principal) throw ctx.authError ?? unauthenticated();
      if (!ctx.ability.can('read', 'Metrics')) throw new AppError(ErrorCode.FORBIDDEN, 'Not allowed to read Metrics');
      if (!inference) {
        res.status(404).json(errorBody(ErrorCode.NOT_FOUND, 'This process does not serve predictions', res.locals.requestId));
        return;
      }
      res.setHeader('content-type', inference.metrics.registry.contentType);
      res.send(await inference.metrics.registry.metrics());
    } catch (e) {
      next(e);
    }
  });

  expressApp.use('/v2', openInferenceRouter(app, (authorization, requestId) => contextFor(app, authorization, requestId)));

  expressApp.post('/artifacts', async (req, res, next) => {
    try {
      const ctx = await contextFor(app, req.header('authorization'), res.locals.requestId);
      const result = await uploadArtifact(ctx, req);
      res.status(result.created ? 201 : 200).json(result);
    } catch (e) {
      next(e);
    }
  });

  expressApp.post('/datasets/content', async (req, res, next) => {
    try {
      const ctx = await contextFor(app, req.header('authorization'), res.locals.requestId);
      const result = await uploadDatasetContent(ctx, req);
      res.status(result.created ? 201 : 200).json(result);
    } catch (e) {
      next(e);
    }
  });

  mountAuditExportRoutes(expressApp, app, contextFor);

  expressApp.use(
    '/graphql',
    express.json({ limit: config.bodyLimitBytes }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => contextFor(app, req.header('authorization'), res.locals.requestId),
    }),
  );

  // Errors outside GraphQL execution (body too large, malformed JSON, uploads): JSON, no stack.
  expressApp.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const requestId = res.locals.requestId ?? randomUUID();
    const e = err as { type?: string; status?: number; message?: string };
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (req.destroyed && !req.complete) {
      // The body was cut off unread (an upload past the size limit): the connection cannot carry
      // another request, and a client reusing it would hang until the keep-alive timeout.
      res.setHeader('connection', 'close');
    }
    if (e.type === 'entity.too.large' || e.status === 413 || err instanceof ArtifactRejectedError) {
      res.status(413).json(errorBody(ErrorCode.BAD_USER_INPUT, err instanceof ArtifactRejectedError ? err.message : `Body exceeds ${config.bodyLimitBytes} bytes`, requestId, CoreReason.BODY_TOO_LARGE));
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json(errorBody(ErrorCode.BAD_USER_INPUT, 'Body is not valid JSON', requestId, CoreReason.MALFORMED_JSON));
      return;
    }
    if (err instanceof AppError) {
      const status = HTTP_STATUS[err.code];
      if (typeof err.details.retryAfterSeconds === 'number') res.setHeader('retry-after', String(err.details.retryAfterSeconds));
      res.status(status).json(errorBody(err.code, err.message, requestId, err.details.reason));
      return;
    }
    log.error({ err, requestId, path: req.path }, 'unexpected error');
    res.status(500).json(errorBody(ErrorCode.INTERNAL, 'Internal server error', requestId));
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  const port = (httpServer.address() as AddressInfo).port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    app,
    statements,
    schema,
    followedSockets: () => guard.followed,
    stop: () =>
      (stopping ??= (async () => {
        await apollo.stop();
        await new Promise<void>((resolve) => wsServer.close(() => resolve()));
        await workers?.close();
        await inference?.close();
        stopFollowingAccess();
        guard.close();
        await app.close();
      })()),
  };
}

