export {
  ROUTE_REASONS,
  RouteAnswer,
  type RouteOptions,
  type RouteReason,
  route,
  routeEndpoint,
} from './route.js';
export {
  SignalClient,
  SignalError,
  signalUrlFor,
  type WebSocketFactory,
  type WebSocketLike,
} from './SignalClient.js';
