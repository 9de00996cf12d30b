/**
 * The one-line progress indicator on stderr. On a terminal the line is rewritten in place;
 * elsewhere (CI logs, a pipe) only each new step prints, one line each, so logs stay short.
 */
export class Progress {
  readonly #prefix: string;
  readonly #tty = process.stderr.isTTY === true;
  readonly #started = Date.now();
  #step = '';
  #shown = false;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** A new step, such as the next case of a benchmark. */
  step(text: string): void {
    this.#step = text;
    if (this.#tty) this.detail('');
    else process.stderr.write(`${this.#prefix} ${text}\n`);
  }

  /** Detail within the step (round 3/5); shown on a terminal only. */
  detail(text: string): void {
    if (!this.#tty) return;
    const elapsed = ((Date.now() - this.#started) / 1000).toFixed(1);
    const line = `${this.#prefix} ${this.#step}${text ? ` · ${text}` : ''} · ${elapsed} s`;
    const width = process.stderr.columns ?? 100;
    process.stderr.write(`\r\x1b[2K${line.slice(0, Math.max(20, width - 1))}`);
    this.#shown = true;
  }

  /** Clears the line, so that what follows starts on a clean one. */
  done(): void {
    if (this.#tty && this.#shown) process.stderr.write('\r\x1b[2K');
    this.#shown = false;
  }
}
