// The image's HEALTHCHECK: GET /healthz on the node's own port, over HTTPS when the node
// serves TLS itself (the certificate names the public host, not 127.0.0.1, so it is not
// verified here: this only asks whether the process answers). Exit 0 healthy, 1 not.
import { request as http } from 'node:http';
import { request as https } from 'node:https';

const port = Number(process.env.SFU_HTTP_PORT ?? 7880);
const tls = Boolean(process.env.SFU_TLS_CERT);
const req = (tls ? https : http)(
  { host: '127.0.0.1', port, path: '/healthz', timeout: 2_000, rejectUnauthorized: false },
  (res) => process.exit(res.statusCode === 200 ? 0 : 1),
);
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', () => process.exit(1));
req.end();
