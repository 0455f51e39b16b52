import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppServices } from '../core/context';
import { unauthenticated } from '../core/errors';
import type { Logger } from '../core/logger';
import { HEADER_LENGTH } from '../inference/oip-binary';
import { inferOip, oipErrorReply, type OipReply } from '../inference/open-inference';
import { BufferedAccessLog } from './access-log';
import { requestIdFrom } from './http-routes';
import { contextFor } from './request-context';

/** `/v2/models/{name}/infer` and `/v2/models/{name}/versions/{version}/infer`, as sent (percent-encoded). */
const INFER_PATH = /^\/v2\/models\/([^/]+)\/(?:versions\/([^/]+)\/)?infer$/;

/** The route templates these paths are counted under, as the Express routes name them. */
const ROUTE = { plain: '/v2/models/:name/infer', versioned: '/v2/models/:name/versions/:version/infer' } as const;

/** A JSON body the lean handler parses itself: `application/json`, UTF-8 (or no charset named). */
function isPlainJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  // Clients send the same header on every request: the last answer is kept.
  if (contentType === lastContentType.value) return lastContentType.plain;
  const plain = parsePlainJson(contentType);
  lastContentType.value = contentType;
  lastContentType.plain = plain;
  return plain;
}
const lastContentType: { value: string | undefined; plain: boolean } = { value: undefined, plain: false };

function parsePlainJson(contentType: string): boolean {
  const [type, ...params] = contentType.toLowerCase().split(';');
  if (type.trim() !== 'application/json') return false;
  return params.every((p) => {
    const [k, v] = p.split('=').map((x) => x.trim());
    return k !== 'charset' || v === 'utf-8' || v === '"utf-8"';
  });
}

/** What JSON body parsing refuses, in the shape the error reply knows (as Express's parser reports it). */
const parseFailed = () => Object.assign(new Error('Body is not valid JSON'), { type: 'entity.parse.failed', status: 400 });

/** A JSON body as Express's parser reads it in its strict mode: empty is `{}`, anything but an object or array is refused. */
function parseJsonBody(bytes: Buffer): unknown {
  if (bytes.length === 0) return {};
  const text = bytes.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[') throw parseFailed();
  try {
    return JSON.parse(text);
  } catch {
    throw parseFailed();
  }
}

/**
 * The Open Inference Protocol's infer routes served straight from Node's HTTP server, ahead of
 * Express: the request's whole cost is authentication (the principal cache), the policy check, the
 * input checks and the run, through the same functions as the Express route
 * ({@link inferOip}, {@link oipErrorReply}), so the answers, errors, audit of refusals and
 * prediction log are the same. Request id, HTTP metrics (same route templates) and access log lines
 * (written in batches after the turn, see {@link BufferedAccessLog}) are kept.
 *
 * It takes only the common case: a POST to an infer path with a plain UTF-8 JSON body or the binary
 * extension's bytes, no content encoding, a declared length within the body limit. Anything else
 * (compressed bodies, other charsets or content types, case or trailing-slash variants of the path,
 * paths that are not valid percent-encoding, a process without an inference engine) returns false
 * and is left to Express, which answers it as before.
 */
export function leanInferHandler(app: AppServices, log: Logger): (req: IncomingMessage, res: ServerResponse) => boolean {
  const metrics = app.metrics!;
  const limit = app.config.bodyLimitBytes;
  const access = new BufferedAccessLog(log);
  // The labelled series these routes count into, made once (a label set is hashed on each lookup).
  const series = new Map<string, { requests: { inc(): void }; duration: { observe(v: number): void } }>();
  const count = (route: string, status: string, seconds: number) => {
    const key = `${route} ${status}`;
    let s = series.get(key);
    if (!s) {
      const labels = { method: 'POST', route, status };
      series.set(key, (s = { requests: metrics.httpRequests.labels(labels), duration: metrics.httpDuration.labels(labels) }));
    }
    s.requests.inc();
    s.duration.observe(seconds);
  };

  return (req, res) => {
    if (req.method !== 'POST' || !app.inference) return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const m = INFER_PATH.exec(path);
    if (!m) return false;
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return false;
    const headerLength = req.headers[HEADER_LENGTH] as string | undefined;
    if (headerLength === undefined && !isPlainJson(req.headers['content-type'])) return false;
    const declared = req.headers['content-length'];
    if (declared !== undefined && !(Number(declared) <= limit)) return false;
    let name: string;
    let version: string | undefined;
    try {
      name = decodeURIComponent(m[1]);
      version = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } catch {
      return false;
    }

    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const route = version === undefined ? ROUTE.plain : ROUTE.versioned;
    let principal: string | null | undefined;
    let done = false;
    const record = () => {
      if (done) return;
      done = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const status = res.headersSent ? `${Math.floor(res.statusCode / 100)}xx` : 'aborted';
      count(route, status, ms / 1000);
      access.write({ requestId, method: 'POST', path, status: res.statusCode, ms, ...(principal !== undefined ? { principal } : {}) });
    };
    res.once('finish', record);
    res.once('close', record);
    res.setHeader('x-request-id', requestId);

    const send = (reply: OipReply, close = false) => {
      if (res.headersSent || res.destroyed) return;
      const headers: Record<string, string | number> = { ...reply.headers, 'content-length': Buffer.byteLength(reply.body) };
      if (close) headers.connection = 'close';
      res.writeHead(reply.status, headers);
      res.end(reply.body);
    };
    const fail = (e: unknown, close = false) => send(oipErrorReply(app, e, requestId, path), close);

    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > limit) {
        // A body past the limit without a declared length: refused without reading the rest, and
        // the connection is not reused (what is left of the body would be read as the next request).
        refused = true;
        chunks.length = 0;
        req.pause();
        fail(Object.assign(new Error('request entity too large'), { type: 'entity.too.large', status: 413 }), true);
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (refused) return;
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      void (async () => {
        try {
          // As on the Express route: the body is read before the caller is identified.
          const body = headerLength === undefined ? parseJsonBody(bytes) : bytes;
          const ctx = await contextFor(app, req.headers.authorization, requestId);
          principal = ctx.principal?.id ?? null;
          if (!ctx.principal) throw ctx.authError ?? unauthenticated();
          send(await inferOip(ctx, { name, version }, headerLength, body));
        } catch (e) {
          fail(e);
        }
      })();
    });
    return true;
  };
}
