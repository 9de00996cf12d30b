import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { FileWatch, type Logger, SfuError, TypedEmitter } from '@geosfu/common';

/** A certificate and its key, as PEM, ready for `https.createServer` / `setSecureContext`. */
export interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

export type TlsCredentialsEvents = {
  /** The files changed and the new pair is valid: hand it to the server. */
  reloaded: [pair: TlsPair];
};

/** How often the files are stat-polled under the directory watch. */
const TLS_POLL_MS = 10_000;

/**
 * The node's TLS certificate and key (SFU_TLS_CERT, SFU_TLS_KEY), reloaded when the files
 * are replaced (certbot or an ACME client renewing every 60-90 days) without a restart:
 * watched like the GeoIP databases (`FileWatch`). A replaced pair that does not load (a key
 * that does not match, a file caught half written) keeps the previous one in use, with a
 * warning, and is tried again on the next change.
 */
export class TlsCredentials extends TypedEmitter<TlsCredentialsEvents> {
  readonly #certPath: string;
  readonly #keyPath: string;
  readonly #logger: Logger;
  #pair: TlsPair;
  #signature: string;
  #watch: FileWatch | undefined;

  private constructor(certPath: string, keyPath: string, logger: Logger, loaded: Loaded) {
    super((event, error) => logger.error({ err: error, event }, 'tls listener threw'));
    this.#certPath = certPath;
    this.#keyPath = keyPath;
    this.#logger = logger;
    this.#pair = loaded.pair;
    this.#signature = loaded.signature;
  }

  /** Loads the pair; throws CONFIG_INVALID saying which file is wrong. */
  static async open(certPath: string, keyPath: string, logger: Logger): Promise<TlsCredentials> {
    const cert = resolve(certPath);
    const key = resolve(keyPath);
    let loaded: Loaded;
    try {
      loaded = await load(cert, key);
    } catch (error) {
      throw new SfuError(
        'CONFIG_INVALID',
        `cannot use SFU_TLS_CERT=${certPath} with SFU_TLS_KEY=${keyPath}: ${(error as Error).message}; give a PEM certificate chain and its PEM private key`,
        { cause: error },
      );
    }
    const tls = new TlsCredentials(cert, key, logger.child({ component: 'tls' }), loaded);
    tls.#watch = new FileWatch({
      dirs: [dirname(cert), dirname(key)],
      pollIntervalMs: TLS_POLL_MS,
      check: () => tls.#check(),
      label: 'TLS certificate',
      logger: tls.#logger,
    });
    return tls;
  }

  get pair(): TlsPair {
    return this.#pair;
  }

  /** Checks the files now (the watch does this by itself). */
  checkForUpdates(): Promise<void> {
    return this.#watch?.checkNow() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.#watch?.close();
    this.removeAllListeners();
  }

  async #check(): Promise<void> {
    let signature: string;
    try {
      signature = await signatureOf(this.#certPath, this.#keyPath);
    } catch (error) {
      // Mid-rename: the file is back in a moment and the watch fires again.
      this.#logger.debug({ err: error }, 'TLS files not readable right now');
      return;
    }
    if (signature === this.#signature) return;
    try {
      const loaded = await load(this.#certPath, this.#keyPath);
      this.#pair = loaded.pair;
      this.#signature = loaded.signature;
      this.#logger.info({ cert: this.#certPath }, 'TLS certificate reloaded');
      this.safeEmit('reloaded', loaded.pair);
    } catch (error) {
      // Remember the bad signature so a broken pair is not re-read on every poll.
      this.#signature = signature;
      this.#logger.warn(
        { err: error, cert: this.#certPath, key: this.#keyPath },
        'TLS files changed but do not load; keeping the previous certificate',
      );
    }
  }
}

interface Loaded {
  pair: TlsPair;
  signature: string;
}

async function load(certPath: string, keyPath: string): Promise<Loaded> {
  const signature = await signatureOf(certPath, keyPath);
  const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
  // Throws for unparsable PEM and for a key that does not belong to the certificate.
  createSecureContext({ cert, key });
  return { pair: { cert, key }, signature };
}

async function signatureOf(...paths: string[]): Promise<string> {
  const parts = await Promise.all(
    paths.map(async (p) => {
      const s = await stat(p);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    }),
  );
  return parts.join('|');
}
