import 'reflect-metadata';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import express from 'express';
import { NoSchemaIntrospectionCustomRule, type GraphQLSchema } from 'graphql';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import type { AppServices, RequestContext } from '../core/context';
import type { StatementCounter } from '../core/database';
import { AppError, toClientError } from '../core/errors';
import { createLogger, type Logger } from '../core/logger';
import { graphqlMetricsPlugin, httpMetrics } from '../core/http-metrics';
import { queryLimitsPlugin } from '../core/query-limits';
import { InferenceEngine } from '../inference/inference.engine';
import { followRunBudgets } from '../monitoring/run-budget-alert.service';
import { httpErrorHandler, httpRoutes } from './http-routes';
import { accessLogPlugin } from './access-log';
import { leanInferHandler } from './open-inference.lean';
import { httpContextFor } from './request-context';
import { buildAppSchema } from './schema';
import { openAppServices } from './services';
import { graphqlWebSocket } from './websocket';
import { startWorkers } from './workers';

export interface RunningServer {
  url: string;
  port: number;
  app: AppServices;
  statements: StatementCounter;
  schema: GraphQLSchema;
  /** How many WebSocket connections have their credential followed now (each with a recheck timer). */
  followedSockets(): number;
  /** This server's subscription metrics (`modelgov_subscription_executions_total` and the like), served at /metrics with the process's others. */
  subscriptionMetrics: Registry;
  /**
   * Stops the server: refuses new connections, lets in-flight HTTP requests finish (for up to
   * `SHUTDOWN_GRACE_MS`, then ends them), closes WebSocket clients with 1001 (going away), lets
   * running jobs finish or hands them back, writes the prediction log, then closes the inference
   * threads, the pools, Redis and the database. Called twice, it returns the same promise.
   */
  stop(): Promise<void>;
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
export async function startServer(config: Config, log: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  const app = await openAppServices(config, log);
  const { statements } = app;
  const workers = config.workersInProcess ? startWorkers(app) : null;
  // Every routed model version is loaded and warmed up before the server listens.
  const inference = config.inference.enabled ? new InferenceEngine(config.databaseUrl, app.artifacts, config.inference, log, { windowSeconds: config.inference.windowSeconds, binsFor: (id) => app.rollupBins(id) }, app.connectionLogs.postgres, app.metrics!.registry) : null;
  if (inference) {
    app.inference = inference;
    followRunBudgets(app, inference);
    await inference.start();
  }

  const schema = await buildAppSchema(app.events!.pubSub);
  const expressApp = express();
  expressApp.disable('x-powered-by');
  // First, so that every request is counted, whichever handler answers it.
  expressApp.use(httpMetrics(app.metrics!, ['/graphql']));
  // The Open Inference Protocol's infer routes are answered before Express sees them (see
  // `leanInferHandler`); whatever that handler leaves goes through Express as every other request.
  const leanInfer = leanInferHandler(app, log);
  const httpServer = createServer((req, res) => {
    if (!leanInfer(req, res)) expressApp(req, res);
  });

  // Introspection is refused in production by these rules, on HTTP and WebSocket alike.
  const validationRules = config.isProduction ? [NoSchemaIntrospectionCustomRule] : [];
  const limits = { maxDepth: config.maxQueryDepth, maxCost: config.maxQueryCost, maxAliases: config.maxQueryAliases, hideSchemaDetails: config.isProduction };
  const ws = graphqlWebSocket(httpServer, app, schema, { validationRules, limits, log });
  const { wsServer, guard } = ws;

  const apollo = new ApolloServer<RequestContext>({
    schema,
    // Refused by `validationRules` instead, so that the WebSocket path applies the same rules.
    introspection: true,
    validationRules,
    hideSchemaDetailsFromClientErrors: config.isProduction,
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    // The process entry point owns SIGTERM and SIGINT: one shutdown path, which ends with `stop`.
    stopOnTerminationSignals: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: config.shutdownGraceMs }),
      // No field sets cache hints, and Apollo's default cache-control plugin would still run a hook
      // for every field of every object (a lineage answer holds thousands).
      ApolloServerPluginCacheControlDisabled(),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await ws.dispose(config.shutdownGraceMs);
            },
          };
        },
      },
      graphqlMetricsPlugin(app.metrics!),
      queryLimitsPlugin(schema, limits),
      errorPlugin(log),
      accessLogPlugin(),
      config.isProduction ? ApolloServerPluginLandingPageDisabled() : ApolloServerPluginLandingPageLocalDefault({ embed: true }),
    ],
  });
  await apollo.start();

  expressApp.use(httpRoutes(app, ws.fanout.registry, log));
  expressApp.use(
    '/graphql',
    express.json({ limit: config.bodyLimitBytes }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => httpContextFor(app, req, res),
    }),
  );

  expressApp.use(httpErrorHandler(config.bodyLimitBytes, log));

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
    subscriptionMetrics: ws.fanout.registry,
    stop: () =>
      (stopping ??= (async () => {
        // Requests and jobs finish side by side, each within the grace period, while the database,
        // Redis and the inference threads they use are still open.
        await Promise.all([apollo.stop(), workers?.close()]);
        await new Promise<void>((resolve) => wsServer.close(() => resolve()));
        await inference?.close();
        guard.close();
        await app.close();
      })()),
  };
}

