// Delivers one notification over HTTP(S) without letting the channel's URL reach into the network
// the server runs in: the host is resolved once, every address judged, and the connection made to
// the vetted address through a `lookup` that answers only with it, so no second resolution can
// rebind the name between the check and the connect.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { NotifyConfig } from '../config';
import { ipLiteral, refusedAddress } from './notification-address';

/** At most this much of a receiver's answer is read (the rest is dropped). */
export const RESPONSE_BODY_LIMIT = 64 * 1024;

/** One HTTP POST to make. */
export interface OutgoingNotification {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** What became of one delivery, as recorded and shown; never carries the channel's secret. */
export interface DeliveryOutcome {
  /** A 2xx answer was received. */
  delivered: boolean;
  /** The receiver's HTTP status, when it answered. */
  status: number | null;
  /** The address connected to (or that would have been). */
  address: string | null;
  /** Why it was not delivered: refused destination, redirect, timeout, network or HTTP error. */
  error: string | null;
  /** A redirect's `Location` (never followed). */
  location: string | null;
  /** The start of the receiver's answer (at most {@link RESPONSE_BODY_LIMIT} bytes, as text). */
  responseBody: string | null;
  /** The receiver's `Retry-After` header (seconds or an HTTP date), when it sent one. */
  retryAfter?: string | null;
}

/** Why a URL cannot be a destination, raised by {@link vetDestination}. */
export class RefusedDestination extends Error {}

/** The network settings the sender needs (the notification part of the config). */
export type SenderSettings = Pick<NotifyConfig, 'allowedHosts' | 'connectTimeoutMs' | 'timeoutMs'>;

/** A URL found sendable, with the one address to connect to. */
export interface VettedDestination {
  url: URL;
  address: string;
  family: 4 | 6;
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
}

/**
 * Checks a URL as a destination: http or https, no credentials in it, and a host that is (or
 * resolves to at least one) public address, unless the host is in NOTIFY_ALLOWED_HOSTS. Resolves
 * the name once; the address returned is the one to connect to. Throws {@link RefusedDestination}
 * with the reason.
 */
export async function vetDestination(settings: SenderSettings, raw: string): Promise<VettedDestination> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RefusedDestination('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RefusedDestination(`scheme ${url.protocol.replace(/:$/, '')} is not http or https`);
  if (url.username || url.password) throw new RefusedDestination('a URL with a user name or password is refused');
  const host = url.hostname.toLowerCase();
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const allowed = settings.allowedHosts.has(bare);
  const literal = ipLiteral(host);
  if (literal) {
    const why = refusedAddress(literal);
    if (why && !allowed) throw new RefusedDestination(`${literal} is a ${why} address`);
    return { url, address: literal, family: literal.includes(':') ? 6 : 4 };
  }
  let addresses: LookupAddress[];
  try {
    addresses = await resolveAll(bare);
  } catch (e) {
    throw new RefusedDestination(`${bare} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'lookup failed'})`);
  }
  const usable = allowed ? addresses : addresses.filter((a) => !refusedAddress(a.address));
  if (!usable.length) {
    const reasons = addresses.map((a) => `${a.address}: ${refusedAddress(a.address)}`).join(', ');
    throw new RefusedDestination(`${bare} resolves only to refused addresses (${reasons})`);
  }
  return { url, address: usable[0].address, family: usable[0].family === 6 ? 6 : 4 };
}

/**
 * POSTs one notification. Never follows a redirect (a 3xx is a failed delivery, its Location
 * noted), gives up after the connect timeout or the total timeout, reads at most
 * {@link RESPONSE_BODY_LIMIT} bytes of the answer, and verifies TLS with the default agent's trust.
 * Never throws: every failure is on the outcome.
 */
export async function sendNotification(settings: SenderSettings, request: OutgoingNotification): Promise<DeliveryOutcome> {
  const failed = (error: string, address: string | null = null): DeliveryOutcome => ({ delivered: false, status: null, address, error, location: null, responseBody: null });
  const deadline = Date.now() + settings.timeoutMs;
  let dest: VettedDestination;
  try {
    dest = await Promise.race([
      vetDestination(settings, request.url),
      new Promise<never>((_, reject) => setTimeout(() => reject(new RefusedDestination('name resolution timed out')), settings.timeoutMs).unref()),
    ]);
  } catch (e) {
    return failed(e instanceof RefusedDestination ? `refused: ${e.message}` : `refused: ${(e as Error).message}`);
  }
  const pinned: LookupFunction = (_host, options, callback) => {
    const cb = callback as (err: Error | null, address: string | LookupAddress[], family?: number) => void;
    if ((options as { all?: boolean }).all) cb(null, [{ address: dest.address, family: dest.family }]);
    else cb(null, dest.address, dest.family);
  };
  const client = dest.url.protocol === 'https:' ? https : http;
  return new Promise<DeliveryOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: DeliveryOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(total);
      clearTimeout(connect);
      resolve(outcome);
    };
    const req = client.request(dest.url, {
      method: 'POST',
      lookup: pinned,
      headers: { 'content-type': 'application/json', 'user-agent': 'modelgov-notifier', ...request.headers, 'content-length': Buffer.byteLength(request.body) },
    });
    const total = setTimeout(() => {
      finish(failed(`timed out after ${settings.timeoutMs} ms`, dest.address));
      req.destroy();
    }, Math.max(1, deadline - Date.now()));
    const connect = setTimeout(() => {
      finish(failed(`connect timed out after ${settings.connectTimeoutMs} ms`, dest.address));
      req.destroy();
    }, settings.connectTimeoutMs);
    req.on('socket', (socket) => {
      if (!socket.connecting) clearTimeout(connect);
      else socket.once('connect', () => clearTimeout(connect));
    });
    req.on('error', (e) => finish(failed((e as NodeJS.ErrnoException).code ?? e.message, dest.address)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        const status = res.statusCode ?? 0;
        const responseBody = Buffer.concat(chunks).toString('utf8');
        const location = status >= 300 && status < 400 ? (res.headers.location ?? null) : null;
        const error =
          status >= 200 && status < 300 ? null : location !== null || (status >= 300 && status < 400) ? `redirect ${status} not followed` : `HTTP ${status}`;
        const retryAfter = typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : null;
        finish({ delivered: error === null, status, address: dest.address, error, location, responseBody, retryAfter });
      };
      res.on('data', (chunk: Buffer) => {
        if (size >= RESPONSE_BODY_LIMIT) return;
        const room = RESPONSE_BODY_LIMIT - size;
        chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(chunk.length, room);
        if (size >= RESPONSE_BODY_LIMIT) {
          // Enough has been read: the rest is not waited for.
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', () => done());
    });
    req.end(request.body);
  });
}
