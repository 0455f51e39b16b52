import type { ApolloServerPlugin } from '@apollo/server';
import type { NextFunction, Request, Response } from 'express';
import type { Metrics } from './metrics';

// Apart from `metrics`: a worker process, which serves no HTTP, loads neither Express nor Apollo.

const statusClass = (status: number) => `${Math.floor(status / 100)}xx`;

/** The methods counted by name; any other is `other` (bounded labels whatever clients send). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Express middleware counting every request when its answer ends (or the connection closes), by its
 * route template: the matched route's path under its (literal) mount path (`/v2/models/:name/infer`),
 * one of `mounts` for handlers mounted without routes of their own (`/graphql`), `unmatched` when
 * nothing took it. Never the raw path: the labels stay bounded whatever clients ask for.
 */
export function httpMetrics(metrics: Metrics, mounts: readonly string[] = []) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    let done = false;
    const record = () => {
      if (done) return;
      done = true;
      const labels = { method: METHODS.has(req.method) ? req.method : 'other', route: routeTemplateOf(req, mounts), status: res.headersSent ? statusClass(res.statusCode) : 'aborted' };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}

const segmentsOf = (p: string) => p.split('/').filter(Boolean);

/** Whether the route path `template` matches the last segments of `path` (`:param` matches any one). */
function matchesTail(template: string[], path: string[]): boolean {
  if (template.length > path.length) return false;
  const tail = path.slice(path.length - template.length);
  return template.every((t, i) => t.startsWith(':') || t === tail[i]);
}

function routeTemplateOf(req: Request, mounts: readonly string[]): string {
  const path = segmentsOf((req.originalUrl ?? req.url).split('?')[0]);
  const route = (req as Request & { route?: { path?: unknown } }).route;
  if (route) {
    // A route given several paths: the longest that matches. Whatever precedes it is its mount path, literal here.
    const paths = ((Array.isArray(route.path) ? route.path : [route.path]) as unknown[]).filter((p): p is string => typeof p === 'string').map(segmentsOf);
    const chosen = paths.filter((p) => matchesTail(p, path)).sort((x, y) => y.length - x.length)[0];
    if (chosen) return `/${[...path.slice(0, path.length - chosen.length), ...chosen].join('/')}`;
  }
  const joined = `/${path.join('/')}`;
  return mounts.find((m) => joined === m || joined.startsWith(`${m}/`)) ?? 'unmatched';
}

/** Counts GraphQL operations by type and outcome (an Apollo Server plugin). */
export function graphqlMetricsPlugin(metrics: Metrics): ApolloServerPlugin {
  return {
    async requestDidStart() {
      let outcome: 'ok' | 'error' | 'invalid' = 'ok';
      let started = false;
      return {
        async didResolveOperation() {
          started = true;
        },
        async didEncounterErrors() {
          outcome = started ? 'error' : 'invalid';
        },
        async willSendResponse({ operation, response }) {
          if (response.body.kind === 'single' && response.body.singleResult.errors?.length && outcome === 'ok') outcome = started ? 'error' : 'invalid';
          metrics.graphqlOperations.inc({ operation_type: operation?.operation ?? 'unknown', outcome });
        },
      };
    },
  };
}
