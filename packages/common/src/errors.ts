/**
 * Error codes shared by the server, the wire protocol and the clients.
 * A code is part of the public interface: clients switch on it, so never rename one.
 */
export const ERROR_CODES = [
  'BAD_MESSAGE',
  'UNKNOWN_TYPE',
  'MESSAGE_TOO_LARGE',
  'BAD_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_ENCODING',
  'RATE_LIMITED',
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'PERMISSION_DENIED',
  'NOT_JOINED',
  'ALREADY_JOINED',
  'INVALID_SDP',
  'NEGOTIATION_FAILED',
  'TRACK_NOT_FOUND',
  'TOO_MANY_TRACKS',
  'ROOM_FULL',
  'NODE_DRAINING',
  'SERVICE_UNAVAILABLE',
  'SERVICE_BUSY',
  'NO_NODE_AVAILABLE',
  'INVALID_ARGUMENT',
  'CONFIG_INVALID',
  'NOT_FOUND',
  'TIMEOUT',
  'CLOSED',
  'INTERNAL',
  /** WHIP/WHEP PATCH: an ICE restart, which the node does not do (RFC 9725 section 4.3.2). */
  'ICE_RESTART_UNSUPPORTED',
  /** WHIP/WHEP PATCH: its If-Match is not the session's ETag (RFC 9725 section 4.3.1). */
  'PRECONDITION_FAILED',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_MESSAGE: 400,
  UNKNOWN_TYPE: 400,
  MESSAGE_TOO_LARGE: 413,
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_ENCODING: 415,
  RATE_LIMITED: 429,
  TOKEN_MISSING: 401,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  PERMISSION_DENIED: 403,
  NOT_JOINED: 409,
  ALREADY_JOINED: 409,
  INVALID_SDP: 400,
  NEGOTIATION_FAILED: 500,
  TRACK_NOT_FOUND: 404,
  TOO_MANY_TRACKS: 409,
  ROOM_FULL: 409,
  NODE_DRAINING: 503,
  SERVICE_UNAVAILABLE: 503,
  SERVICE_BUSY: 503,
  NO_NODE_AVAILABLE: 503,
  INVALID_ARGUMENT: 400,
  CONFIG_INVALID: 500,
  NOT_FOUND: 404,
  TIMEOUT: 504,
  CLOSED: 410,
  INTERNAL: 500,
  ICE_RESTART_UNSUPPORTED: 422,
  PRECONDITION_FAILED: 412,
};

/**
 * The one error class of this project. Its `code` goes over the wire unchanged and its
 * message says what to change, so that whoever reads it (a client, an operator) can act.
 */
export class SfuError extends Error {
  override readonly name = 'SfuError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** HTTP status that matches the code, for the REST API. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Use of an object after `close()`: a programming error, like the DOM's InvalidStateError. */
export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** Converts anything thrown into an SfuError, keeping codes of errors that already have one. */
export function toSfuError(error: unknown): SfuError {
  if (error instanceof SfuError) return error;
  if (error instanceof InvalidStateError)
    return new SfuError('CLOSED', error.message, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new SfuError('INTERNAL', message, { cause: error });
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
