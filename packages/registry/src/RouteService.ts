import { type Logger, SfuError, type TokenService } from '@geosfu/common';
import type { GeoIpLocator } from './GeoIpLocator.js';
import { clientAddress, type TrustedProxies } from './ip.js';
import type { NodePin, NodeSelector, SelectionReason } from './NodeSelector.js';
import type { RoomStore } from './RoomStore.js';

/** The answer of `GET /v1/route`: where the caller should connect. */
export interface RouteAnswer {
  nodeId: string;
  region: string;
  url: string;
  signalUrl: string;
  distanceKm: number | null;
  reason: SelectionReason;
}

export interface RouteRequest {
  /** The `Authorization` header: `Bearer <access token>`. */
  authorization: string | undefined;
  room: string | undefined;
  region?: string | undefined;
  node?: string | undefined;
  /** The TCP peer of the request. */
  socketAddress: string | undefined;
  /** The `X-Forwarded-For` header, believed only from a trusted proxy. */
  forwardedFor: string | string[] | undefined;
}

/** A route decision's outcome, for `sfu_route_decisions_total{result}`. */
export type RouteResult = SelectionReason | 'error';

/**
 * Answers "where do I connect for room R?": verifies the caller's token, locates the caller
 * by GeoIP (the socket address, or X-Forwarded-For from a trusted proxy), and asks the
 * selector for the nearest healthy node, preferring one that already hosts the room (room
 * affinity: one read of the room's sessions, when several nodes are near). Shared by every node and by `sfu-directory`.
 */
export class RouteService {
  readonly #tokens: TokenService;
  readonly #selector: NodeSelector;
  readonly #locator: GeoIpLocator | undefined;
  readonly #trusted: TrustedProxies;
  readonly #logger: Logger;
  readonly #onDecision: ((result: RouteResult) => void) | undefined;
  readonly #roomHosts: RoomHosts | undefined;

  constructor(options: {
    tokens: TokenService;
    selector: NodeSelector;
    locator?: GeoIpLocator | undefined;
    trusted: TrustedProxies;
    logger: Logger;
    onDecision?: (result: RouteResult) => void;
    /** Which nodes host a room (room affinity); without it, routing ignores the room. */
    roomHosts?: RoomHosts;
  }) {
    this.#tokens = options.tokens;
    this.#selector = options.selector;
    this.#locator = options.locator;
    this.#trusted = options.trusted;
    this.#logger = options.logger;
    this.#onDecision = options.onDecision;
    this.#roomHosts = options.roomHosts;
  }

  async route(request: RouteRequest): Promise<RouteAnswer> {
    try {
      const answer = await this.#route(request);
      this.#onDecision?.(answer.reason);
      return answer;
    } catch (error) {
      this.#onDecision?.('error');
      throw error;
    }
  }

  async #route(request: RouteRequest): Promise<RouteAnswer> {
    const auth = request.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(auth);
    const token = await this.#tokens.verify(match?.[1]);
    const room = request.room ?? token.room;
    if (room !== token.room) {
      throw new SfuError(
        'PERMISSION_DENIED',
        `the token is for room "${token.room}", not "${room}"`,
      );
    }
    if (request.region && request.node) {
      throw new SfuError('INVALID_ARGUMENT', 'pin a region or a node, not both');
    }
    const pin: NodePin | undefined = request.node
      ? { nodeId: request.node }
      : request.region
        ? { region: request.region }
        : undefined;
    const address = clientAddress(request.socketAddress ?? '', request.forwardedFor, this.#trusted);
    const location = address && this.#locator ? this.#locator.locate(address) : undefined;
    const select = { location, pin, canPinRegion: token.grants.canPinRegion };
    let selection = this.#selector.select(select);
    // The room's hosts cost a Redis round trip: asked only when they can change the answer
    // (several nodes near the caller), so a region of one node routes as fast as before.
    if (selection.choices > 1) {
      const roomHosts = await this.#hosts(room);
      if (roomHosts) selection = this.#selector.select({ ...select, roomHosts });
    }
    this.#logger.debug(
      { address, location, node: selection.node.id, reason: selection.reason },
      'routed',
    );
    return {
      nodeId: selection.node.id,
      region: selection.node.region,
      url: selection.node.url,
      signalUrl: selection.node.signalUrl,
      distanceKm: selection.distanceKm === null ? null : Math.round(selection.distanceKm),
      reason: selection.reason,
    };
  }

  /** The room's hosts, or undefined when the store cannot say (Redis away): route by place. */
  async #hosts(room: string): Promise<ReadonlyMap<string, number> | undefined> {
    if (!this.#roomHosts) return undefined;
    try {
      return await this.#roomHosts(room);
    } catch (error) {
      this.#logger.debug({ err: error, room }, 'room hosts unknown: routing without affinity');
      return undefined;
    }
  }
}

/** Node id to the room's participants on it, for room affinity (see `NodeSelector`). */
export type RoomHosts = (room: string) => Promise<ReadonlyMap<string, number>>;

/** The `RoomHosts` of a room store: one read of the room's sessions. */
export function roomHostsOf(rooms: Pick<RoomStore, 'participants'>): RoomHosts {
  return async (room) => {
    const hosts = new Map<string, number>();
    for (const session of await rooms.participants(room))
      hosts.set(session.nodeId, (hosts.get(session.nodeId) ?? 0) + 1);
    return hosts;
  };
}
