import type { ApolloServerPlugin } from '@apollo/server';
import type { NextFunction, Request, Response } from 'express';
import type { RequestContext } from '../core/context';
import type { Logger } from '../core/logger';

/** Health and readiness probes (the server's own and the Open Inference Protocol's). */
const PROBES = new Set(['/healthz', '/readyz', '/v2/health/live', '/v2/health/ready']);

/** What a request's access log line says beyond its method, path, status and time, as the request learns it. */
interface AccessFields {
  /** The caller's principal id (never its credential); null when the request was anonymous. */
  principal?: string | null;
  /** GraphQL: the operation's name, or `anonymous`. */
  operation?: string;
  /** GraphQL: query, mutation or subscription. */
  operationType?: string;
}

// A GraphQL context leads back to its request's line (Apollo's plugins see the context, not the
// response). A property, not a WeakMap: Apollo hands plugins a shallow copy of the context.
const ACCESS = Symbol('access log fields');
type Noted = RequestContext & { [ACCESS]?: AccessFields };

function fieldsOf(res: Response): AccessFields {
  return ((res.locals.access as AccessFields | undefined) ??= {});
}

/** Notes the caller of `ctx` on the access log line of the request `res` answers; answers `ctx`. */
export function noteCaller(res: Response, ctx: RequestContext): RequestContext {
  const fields = fieldsOf(res);
  fields.principal = ctx.principal?.id ?? null;
  (ctx as Noted)[ACCESS] = fields;
  return ctx;
}

/**
 * One line per HTTP request, when its response has been sent: request id, method, the path as
 * requested (without its query), status, milliseconds, and, where known, the principal and the
 * GraphQL operation. Passing probes arrive every few seconds from every orchestrator: they are
 * kept out of the info log unless they fail.
 */
export function accessLog(log: Logger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    // `req.path` is relative to where a router is mounted (`/` for /graphql): the original URL it is.
    const path = req.originalUrl.split('?')[0];
    res.on('finish', () => {
      const entry = {
        requestId: res.locals.requestId as string,
        method: req.method,
        path,
        status: res.statusCode,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        ...(res.locals.access as AccessFields | undefined),
      };
      if (PROBES.has(path) && res.statusCode < 400) log.debug(entry, 'request');
      else log.info(entry, 'request');
    });
    next();
  };
}

/** Puts each GraphQL operation's name and type on its request's access log line, as Apollo resolved them (no second parse). */
export function accessLogPlugin(): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, operationName, operation }) {
          const fields = (contextValue as Noted)[ACCESS];
          if (!fields) return;
          fields.operation = operationName ?? 'anonymous';
          if (operation) fields.operationType = operation.operation;
        },
      };
    },
  };
}

/** One access log line's fields, as {@link accessLog} writes them. */
export interface AccessEntry extends AccessFields {
  requestId: string;
  method: string;
  path: string;
  status: number;
  ms: number;
}

/**
 * Access log lines written in batches, after the event loop's current turn, instead of one by one
 * as each response ends: the same lines as {@link accessLog}, kept off the path of the requests
 * answered in that turn (a handler under load ends dozens of responses per turn).
 */
export class BufferedAccessLog {
  private pending: AccessEntry[] = [];
  private scheduled = false;

  constructor(private readonly log: Logger) {}

  /** Queues `entry`; written with the rest of this turn's lines once the turn is over. */
  write(entry: AccessEntry): void {
    this.pending.push(entry);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes every queued line now. */
  flush(): void {
    const lines = this.pending;
    this.pending = [];
    this.scheduled = false;
    for (const entry of lines) {
      if (PROBES.has(entry.path) && entry.status < 400) this.log.debug(entry, 'request');
      else this.log.info(entry, 'request');
    }
  }
}
