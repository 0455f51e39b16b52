import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout (or `destination`); secrets are redacted wherever they appear. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'modelgov' },
    redact: {
      paths: ['authorization', 'headers.authorization', '*.authorization', 'token', '*.token', 'apiKey', '*.secret'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Where a connection URL points, for a log line or an error: `user@host:port/database`, never its
 * password (nor its query, which may carry one).
 */
export function endpointOf(url: string): string {
  try {
    const u = new URL(url);
    const defaultPort = /^rediss?:$/.test(u.protocol) ? '6379' : /^postgres(ql)?:$/.test(u.protocol) ? '5432' : '';
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    const db = u.pathname && u.pathname !== '/' ? u.pathname : '';
    return `${user}${u.hostname}:${u.port || defaultPort}${db}`;
  } catch {
    return '(not a URL)';
  }
}

/**
 * An error's message for one log line: a failed connection to a name with several addresses
 * (`localhost`: ::1 and 127.0.0.1) is an AggregateError without a message of its own.
 */
export function errorText(e: unknown): string {
  const err = e as { message?: string; code?: string; errors?: unknown[] };
  if (err?.message) return err.message;
  if (Array.isArray(err?.errors) && err.errors.length) return [...new Set(err.errors.map(errorText))].join('; ');
  return err?.code ?? String(e);
}
