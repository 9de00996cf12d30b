import type WebSocket from 'ws';
import type { WebSocketLike } from '../core/SignalClient.js';

/** Adapts the `ws` package's EventEmitter API to the handler properties SignalClient uses. */
export function adaptWebSocket(ws: WebSocket): WebSocketLike {
  const adapter: WebSocketLike = {
    get readyState() {
      return ws.readyState;
    },
    send: (data) => ws.send(data),
    close: (code, reason) => ws.close(code, reason),
    onopen: null,
    onclose: null,
    onerror: null,
    onmessage: null,
  };
  ws.on('open', () => adapter.onopen?.(undefined));
  ws.on('close', (code, reason) => adapter.onclose?.({ code, reason: reason.toString() }));
  // Without an 'error' listener an EventEmitter throws; the close event carries what matters.
  ws.on('error', (error) => adapter.onerror?.(error));
  ws.on('message', (data, isBinary) => {
    if (!isBinary) adapter.onmessage?.({ data: data.toString() });
  });
  return adapter;
}
