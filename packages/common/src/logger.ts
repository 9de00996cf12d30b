import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * The one pino root of a process. Children carry `{component, nodeId, region}`; tokens and
 * secrets are redacted wherever they appear in a logged object.
 */
export function createRootLogger(options: { level?: string; name?: string } = {}): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? 'info',
    redact: {
      paths: ['token', '*.token', 'apiSecret', '*.apiSecret', 'authorization', '*.authorization'],
      censor: '[redacted]',
    },
    base: { pid: process.pid },
  };
  if (options.name) opts.name = options.name;
  return pino(opts);
}

/** A logger that drops everything, for library users who pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
