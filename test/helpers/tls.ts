/**
 * Self-signed TLS certificates made with openssl for tests of HTTPS and WSS: a P-256 key and
 * a certificate for the given DNS names and IP addresses, valid two days.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCertificate {
  certPath: string;
  keyPath: string;
  /** base64 SHA-256 of the SubjectPublicKeyInfo: Chromium's --ignore-certificate-errors-spki-list. */
  spkiHash: string;
  /** SHA-256 fingerprint of the certificate, as `getPeerCertificate().fingerprint256` shows it. */
  fingerprint256: string;
}

/**
 * Writes `cert.pem` and `key.pem` into `dir`, each through a temp file renamed over the old
 * one (how certbot and ACME clients replace them), so a second call is a renewal.
 */
export function makeCertificate(
  dir: string,
  names: { dns?: string[]; ips?: string[] },
): TestCertificate {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const san = [
    ...(names.dns ?? []).map((n) => `DNS:${n}`),
    ...(names.ips ?? []).map((ip) => `IP:${ip}`),
  ].join(',');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${keyPath}.new`,
      '-out',
      `${certPath}.new`,
      '-days',
      '2',
      '-subj',
      `/CN=${names.dns?.[0] ?? names.ips?.[0] ?? 'geosfu-test'}`,
      '-addext',
      `subjectAltName=${san}`,
    ],
    { stdio: 'pipe' },
  );
  renameSync(`${keyPath}.new`, keyPath);
  renameSync(`${certPath}.new`, certPath);
  const x509 = new X509Certificate(readFileSync(certPath));
  const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
  return {
    certPath,
    keyPath,
    spkiHash: createHash('sha256').update(spki).digest('base64'),
    fingerprint256: x509.fingerprint256,
  };
}
