/**
 * One async task on a timer, owned by the object that schedules it (a registry heartbeat, a
 * Redis probe): at most one pending run (a new schedule replaces it), the run in progress is
 * known, and `stop()` cancels the pending run and waits for the one in progress, so that a
 * `close()` leaves no timer and no task behind. The task handles its own errors.
 */
export class TaskTimer {
  readonly #task: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(task: () => Promise<void>) {
    this.#task = task;
  }

  /** A run is in progress. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Runs the task in `delayMs`, instead of any run scheduled before. */
  schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#task().finally(() => {
        this.#running = undefined;
      });
    }, delayMs);
  }

  /** Cancels the pending run and waits for the one in progress. */
  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
