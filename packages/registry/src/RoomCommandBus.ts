import {
  deriveKey,
  ERROR_CODES,
  isErrorCode,
  type Logger,
  newMessageId,
  ParticipantPermissions,
  parseBoundedJson,
  type RedisConnection,
  ReplayWindow,
  SfuError,
  signEnvelope,
  silentLogger,
  staleness,
  ThrottledWarn,
  TypedEmitter,
  toSfuError,
  verifyEnvelope,
} from '@geosfu/common';
import { z } from 'zod';
import { DEFAULT_KEY_PREFIX, registryKeys } from './keys.js';

/** A command of the room service API, carried out by the node that holds the participant. */
export const RoomCommand = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('remove'), room: z.string(), identity: z.string() }),
  z.strictObject({
    type: z.literal('mute'),
    room: z.string(),
    identity: z.string(),
    trackId: z.string(),
    muted: z.boolean(),
  }),
  z.strictObject({
    type: z.literal('update'),
    room: z.string(),
    identity: z.string(),
    permissions: ParticipantPermissions.optional(),
    name: z.string().max(128).optional(),
    metadata: z.string().max(4096).optional(),
  }),
  z.strictObject({
    type: z.literal('data'),
    room: z.string(),
    identities: z.array(z.string()).optional(),
    payload: z.string(),
    topic: z.string().optional(),
  }),
  z.strictObject({ type: z.literal('deleteRoom'), room: z.string() }),
]);
export type RoomCommand = z.infer<typeof RoomCommand>;

/** Runs a command on this node; its result is JSON the caller validates. */
export type RoomCommandHandler = (command: RoomCommand) => Promise<unknown>;

export type RoomCommandRejectReason =
  | 'malformed'
  | 'signature'
  | 'stale'
  | 'duplicate'
  | 'wrong-recipient';

export type RoomCommandBusEvents = {
  /** A message on our channel was dropped (forged, unsigned, replayed, not for us). */
  rejected: [reason: RoomCommandRejectReason];
};

/** How long the caller waits for the holding node's reply. */
export const ROOM_COMMAND_TIMEOUT_MS = 5_000;
/** Nothing we send is near this; a larger payload is refused before JSON.parse. */
const MAX_COMMAND_BYTES = 64 * 1024;
/** Domain separation from relay signalling and cluster state (see signing.ts). */
const KEY_LABEL = 'geosfu/room-command/v1';

const Envelope = z.strictObject({
  v: z.literal(1),
  kind: z.enum(['command', 'reply']),
  id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  replyTo: z.string().max(64).optional(),
  from: z.string().min(1).max(64),
  to: z.string().min(1).max(64),
  ts: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  body: z.unknown(),
  // Optional so that an unsigned message is rejected as 'signature', not 'malformed'.
  sig: z.string().max(128).optional(),
});

const Reply = z.union([
  z.strictObject({ result: z.unknown() }),
  z.strictObject({ error: z.strictObject({ code: z.enum(ERROR_CODES), message: z.string() }) }),
]);
type Reply = z.infer<typeof Reply>;

interface Pending {
  to: string;
  resolve: (reply: Reply) => void;
  timer: NodeJS.Timeout;
}

/**
 * Room service commands between nodes (and from sfu-directory) over Redis pub/sub, signed
 * like relay signalling: each process listens on `{prefix}roomcmd:{nodeId}`; a command is an
 * HMAC-SHA256-signed envelope (a key derived from the cluster secret for this use only),
 * checked for recipient, signature, freshness and replay before its body is read. What does
 * not pass is dropped and counted (`rejected`). The caller waits ROOM_COMMAND_TIMEOUT_MS for
 * the reply, then fails with TIMEOUT: a command is sent once (a retry of `data` would
 * deliver it twice).
 */
export class RoomCommandBus extends TypedEmitter<RoomCommandBusEvents> {
  readonly nodeId: string;
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #key: Buffer;
  readonly #logger: Logger;
  /** A flood of bad messages is logged at warn once per reason per 10 s. */
  readonly #rejectLog: ThrottledWarn;
  readonly #seen = new ReplayWindow();
  readonly #pending = new Map<string, Pending>();
  #handler: RoomCommandHandler | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(options: {
    redis: RedisConnection;
    nodeId: string;
    secret: string;
    keyPrefix?: string;
    logger?: Logger;
  }) {
    const logger = (options.logger ?? silentLogger()).child({ component: 'room-commands' });
    super((event, error) => logger.error({ err: error, event }, 'room command listener threw'));
    this.#logger = logger;
    this.#rejectLog = new ThrottledWarn(logger, 'dropped a room command');
    this.nodeId = options.nodeId;
    this.#redis = options.redis;
    this.#prefix = registryKeys(options.keyPrefix ?? DEFAULT_KEY_PREFIX).prefix;
    this.#key = deriveKey(options.secret, KEY_LABEL);
  }

  /** The channel a node's commands arrive on. */
  channel(nodeId: string): string {
    return `${this.#prefix}roomcmd:${nodeId}`;
  }

  /** Starts listening; commands arriving before a handler is set are answered UNAVAILABLE. */
  async start(): Promise<void> {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    await this.#redis.start();
    await this.#redis.subscribe(this.channel(this.nodeId), this.#onMessage);
  }

  /** Sets the one handler of commands for this node. */
  onCommand(handler: RoomCommandHandler): void {
    this.#handler = handler;
  }

  /** Sends a command to node `to` and resolves with its result (JSON, unvalidated). */
  async request(to: string, command: RoomCommand): Promise<unknown> {
    if (this.#state !== 'running') throw new SfuError('CLOSED', 'the room command bus is closed');
    const id = newMessageId();
    const reply = await new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new SfuError(
            'TIMEOUT',
            `node ${to} did not answer the ${command.type} command within ${ROOM_COMMAND_TIMEOUT_MS} ms; it may have died, try again`,
          ),
        );
      }, ROOM_COMMAND_TIMEOUT_MS);
      this.#pending.set(id, { to, resolve, timer });
      this.#send(to, 'command', id, command).catch((error: unknown) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(
          new SfuError('SERVICE_UNAVAILABLE', `could not send the command to node ${to}: Redis`, {
            cause: error,
          }),
        );
      });
    });
    if ('error' in reply) throw new SfuError(reply.error.code, reply.error.message);
    return reply.result;
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    for (const [id, call] of this.#pending) {
      clearTimeout(call.timer);
      call.resolve({ error: { code: 'CLOSED', message: 'the room command bus was closed' } });
      this.#pending.delete(id);
    }
    if (wasRunning) {
      await this.#redis.unsubscribe(this.channel(this.nodeId), this.#onMessage).catch(() => {
        // The connection's owner closes it right after: the subscription goes with it.
      });
    }
  }

  async #send(
    to: string,
    kind: 'command' | 'reply',
    id: string,
    body: unknown,
    replyTo?: string,
  ): Promise<void> {
    const unsigned: Record<string, unknown> = {
      v: 1,
      kind,
      id,
      replyTo,
      from: this.nodeId,
      to,
      ts: Date.now(),
      body,
    };
    const payload = JSON.stringify({ ...unsigned, sig: signEnvelope(this.#key, unsigned) });
    await this.#redis.command.publish(this.channel(to), payload);
  }

  readonly #onMessage = (raw: string): void => {
    if (this.#state !== 'running') return;
    const opened = this.#open(raw);
    if (typeof opened === 'string') {
      this.#reject(opened);
      return;
    }
    if (opened.kind === 'command') {
      void this.#run(opened.from, opened.id, opened.body);
      return;
    }
    const call = opened.replyTo === undefined ? undefined : this.#pending.get(opened.replyTo);
    const reply = Reply.safeParse(opened.body);
    if (!call || opened.replyTo === undefined || call.to !== opened.from || !reply.success) return;
    clearTimeout(call.timer);
    this.#pending.delete(opened.replyTo);
    call.resolve(reply.data);
  };

  /** The envelope, if it is for us, authentic, fresh and first seen; else why not. */
  #open(raw: string): z.infer<typeof Envelope> | RoomCommandRejectReason {
    const read = parseBoundedJson(raw, MAX_COMMAND_BYTES);
    const parsed = read.ok ? Envelope.safeParse(read.json) : undefined;
    if (!read.ok || !parsed?.success) return 'malformed';
    const envelope = parsed.data;
    if (envelope.to !== this.nodeId) return 'wrong-recipient';
    if (verifyEnvelope(this.#key, read.json as Record<string, unknown>, envelope.sig) !== undefined)
      return 'signature';
    const now = Date.now();
    if (staleness(envelope.ts, now) !== undefined) return 'stale';
    if (!this.#seen.remember(`${envelope.from}/${envelope.id}`, now)) return 'duplicate';
    return envelope;
  }

  async #run(from: string, id: string, body: unknown): Promise<void> {
    let reply: Reply;
    const command = RoomCommand.safeParse(body);
    try {
      if (!command.success) throw new SfuError('BAD_MESSAGE', z.prettifyError(command.error));
      if (!this.#handler) throw new SfuError('SERVICE_UNAVAILABLE', 'this node takes no commands');
      reply = { result: (await this.#handler(command.data)) ?? null };
    } catch (error) {
      const coded = toSfuError(error);
      if (coded.code === 'INTERNAL') this.#logger.error({ err: error }, 'room command failed');
      reply = {
        error: { code: isErrorCode(coded.code) ? coded.code : 'INTERNAL', message: coded.message },
      };
    }
    if (this.#state !== 'running') return;
    await this.#send(from, 'reply', newMessageId(), reply, id).catch((error: unknown) => {
      this.#logger.warn({ err: error, to: from }, 'could not send a room command reply');
    });
  }

  #reject(reason: RoomCommandRejectReason): void {
    this.safeEmit('rejected', reason);
    this.#rejectLog.log(reason, { reason });
  }
}
