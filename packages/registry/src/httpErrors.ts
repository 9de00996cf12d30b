import { LIMITS, type Logger, SfuError } from '@geosfu/common';
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';

/**
 * The JSON body parser of every HTTP app (nodes and `sfu-directory`), with its limits
 * spelled out: at most `LIMITS.maxHttpBodyBytes` after inflating (so a gzip bomb stops
 * there), gzip/deflate/br or identity (anything else is UNSUPPORTED_ENCODING), objects and
 * arrays only. What it rejects reaches `errorHandlers` as a 4xx with a code.
 */
export function jsonBody(): RequestHandler {
  return express.json({ limit: LIMITS.maxHttpBodyBytes, inflate: true, strict: true });
}

/** What body-parser, router and serve-static throw: http-errors with a status and a type. */
interface HttpError {
  status: number;
  type?: unknown;
  message?: unknown;
}

function isHttpError(error: unknown): error is HttpError {
  if (typeof error !== 'object' || error === null) return false;
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' && Number.isInteger(status);
}

/**
 * The coded error for a request the client got wrong, or undefined for a fault of ours.
 * body-parser and the router report a client's mistake as an http-error with a 4xx status
 * (a body over the limit, an unknown Content-Encoding, bad JSON, a path whose percent-encoding
 * does not decode); they must not turn into INTERNAL, which would log an error with a stack
 * for every such request and let anyone flood the logs.
 */
export function clientError(error: unknown): SfuError | undefined {
  if (error instanceof SfuError) return error;
  if (!isHttpError(error) || error.status < 400 || error.status >= 500) return undefined;
  const detail = typeof error.message === 'string' ? error.message : '';
  switch (error.type) {
    case 'entity.too.large':
      return new SfuError(
        'PAYLOAD_TOO_LARGE',
        `request body over the limit of ${LIMITS.maxHttpBodyBytes} bytes (after decoding)`,
      );
    case 'encoding.unsupported':
      return new SfuError(
        'UNSUPPORTED_ENCODING',
        `${detail}; send the body with Content-Encoding identity, gzip, deflate or br`,
      );
    case 'charset.unsupported':
      return new SfuError('UNSUPPORTED_ENCODING', `${detail}; send JSON as UTF-8`);
    case 'entity.parse.failed':
      return new SfuError('BAD_MESSAGE', `request body is not valid JSON: ${detail}`);
  }
  switch (error.status) {
    case 404:
      return new SfuError('NOT_FOUND', 'no such endpoint; see the README for the API');
    case 413:
      return new SfuError('PAYLOAD_TOO_LARGE', detail || 'request too large');
    case 415:
      return new SfuError('UNSUPPORTED_ENCODING', detail || 'unsupported media type');
    default:
      // 400 from the router (a malformed percent-encoding), a body that does not inflate
      // or was cut short, and whatever else the client got wrong.
      return new SfuError('BAD_REQUEST', detail || 'bad request');
  }
}

/** Longest path written into a log line: a client chooses it, so it is cut. */
const MAX_LOGGED_PATH = 200;

/**
 * The last handlers of an app: 404 for unknown paths, `{error: {code, message}}` with the
 * code's HTTP status for errors. A client's mistake is logged at warn without a stack; only
 * an error that is no client's mistake is INTERNAL, logged at error with its stack.
 */
export function errorHandlers(
  logger: Logger,
): [
  (req: Request, res: Response, next: NextFunction) => void,
  (error: unknown, req: Request, res: Response, next: NextFunction) => void,
] {
  return [
    (_req, _res, next) =>
      next(new SfuError('NOT_FOUND', 'no such endpoint; see the README for the API')),
    (error, req, res, next) => {
      const coded = clientError(error);
      const path = req.originalUrl.slice(0, MAX_LOGGED_PATH);
      if (coded) {
        logger.warn(
          { code: coded.code, status: coded.status, method: req.method, path },
          `HTTP request refused: ${coded.message}`,
        );
      } else {
        logger.error({ err: error, method: req.method, path }, 'HTTP handler failed');
      }
      if (res.headersSent) {
        next(error); // express ends a response that has started
        return;
      }
      const e = coded ?? new SfuError('INTERNAL', 'internal error');
      res.status(e.status).json({ error: e.toJSON() });
    },
  ];
}
