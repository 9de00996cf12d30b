export {
  SignalClient,
  SignalError,
  signalUrlFor,
  type WebSocketFactory,
  type WebSocketLike,
} from './SignalClient.js';
