import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout; secrets are redacted wherever they appear. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'modelgov' },
    redact: {
      paths: ['authorization', 'headers.authorization', '*.authorization', 'token', '*.token', 'apiKey', '*.secret'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
