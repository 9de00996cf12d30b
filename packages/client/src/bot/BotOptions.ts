import type { Logger } from '@geosfu/common';
import type { TurnTransport } from './peer.js';
import type { PublishOptions } from './publisher.js';

/** How a `Bot` connects, what it publishes and receives. */
export interface BotOptions {
  /**
   * Any node or `sfu-directory`: http(s)://host:port (ws(s):// works too). The bot asks its
   * `/v1/route` where to connect and opens the websocket there. With `route: false` it is the
   * node itself, and may carry the signalling path: ws(s)://host:port[/v1/signal].
   */
  url: string;
  /**
   * Ask `url`'s `GET /v1/route` for the node (default true). False connects straight to `url`
   * (tests that target one node directly).
   */
  route?: boolean;
  /** Pin a region through the route (needs the `canPinRegion` grant). Not with `node`. */
  region?: string;
  /** Pin a node id through the route (needs the `canPinRegion` grant). Not with `region`. */
  node?: string;
  /**
   * An access token. Without one, `room` and `identity` get a token from `url`'s dev endpoint
   * (with the `canPinRegion` grant when `region` or `node` is given).
   */
  token?: string;
  room?: string;
  identity?: string;
  name?: string;
  /** What to publish; nothing when absent. */
  publish?: PublishOptions;
  /** Ask the server to subscribe this bot to every track (default true). */
  subscribe?: boolean;
  /** Use only these local addresses for ICE (tests pass ['127.0.0.1']). */
  hostAddresses?: string[];
  /** Outgoing packet loss of the publisher connection in percent, for NACK tests. */
  lossPercent?: number;
  /** Incoming packet loss of the subscriber connection in percent. */
  receiveLossPercent?: number;
  /** Which of the node's TURN URLs werift uses (it takes only one); default the first. */
  turnTransport?: TurnTransport;
  logger?: Logger;
  /** Websocket open, join, publish and the publisher's ICE/DTLS each get this long (10 s). */
  connectTimeoutMs?: number;
}
