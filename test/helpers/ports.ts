/** Free TCP ports for processes a test or benchmark starts (redis-server, a node's inspector). */
import { createServer } from 'node:net';

/** Asks the OS for a free TCP port on 127.0.0.1 (free now; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
