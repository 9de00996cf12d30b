export { RoomServiceClient, type RoomServiceClientOptions } from '@geosfu/common';
export {
  type ChatMessage,
  type ClientEvents,
  ClientSession,
  type ClientSessionOptions,
  type ConnectOptions,
  type PublishTracks,
} from './core/ClientSession.js';
export { DevTokenError, fetchDevToken, httpBaseUrl } from './core/devToken.js';
export type { DriverContext, DriverFactory, PeerDriver } from './core/PeerDriver.js';
export { Roster } from './core/Roster.js';
export {
  ROUTE_REASONS,
  RouteAnswer,
  type RouteOptions,
  type RouteReason,
  route,
  routeEndpoint,
} from './core/route.js';
export {
  SignalClient,
  SignalError,
  signalUrlFor,
  type WebSocketFactory,
  type WebSocketLike,
} from './core/SignalClient.js';
export { TrickleRouter, type TrickleSink } from './core/TrickleRouter.js';
