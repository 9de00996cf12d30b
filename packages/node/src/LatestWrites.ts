/**
 * Writes of one key's state, one at a time and the latest last: a change while a write is in
 * flight is written once that write is done, with the state as it is then (the changes in
 * between coalesce).
 *
 * Why: the room store's writes of one session's tracks (`setTracks`) each take the room's
 * lock, and a write that finds the lock taken retries after a random wait. Two writes of one
 * session started together (a publisher's audio and video are published in one request)
 * could then land in the wrong order: the store kept the older list, without the video, and
 * every other node told its participants that the video was gone (a far subscriber kept the
 * relayed video but not its layers: once in about 15 runs of the shaped relay test).
 */
export class LatestWrites<State> {
  readonly #write: (key: string, state: State) => Promise<void>;
  /** Per key in flight: the state to write next, if it changed meanwhile. */
  readonly #inFlight = new Map<string, { next: State | undefined }>();

  /** `write` must not reject (it reports its own failures). */
  constructor(write: (key: string, state: State) => Promise<void>) {
    this.#write = write;
  }

  /** Keys with a write in flight (tests). */
  get pending(): number {
    return this.#inFlight.size;
  }

  /** `key`'s state is now `state`: written now, or after the write in flight. */
  changed(key: string, state: State): void {
    const inFlight = this.#inFlight.get(key);
    if (inFlight) {
      inFlight.next = state;
      return;
    }
    const entry: { next: State | undefined } = { next: undefined };
    this.#inFlight.set(key, entry);
    void this.#run(key, state, entry);
  }

  async #run(key: string, first: State, entry: { next: State | undefined }): Promise<void> {
    let state: State | undefined = first;
    try {
      while (state !== undefined) {
        await this.#write(key, state);
        state = entry.next;
        entry.next = undefined;
      }
    } finally {
      this.#inFlight.delete(key);
    }
  }
}
