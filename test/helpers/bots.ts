/** werift bots that a suite connects on loopback and closes at the end, pass or fail. */
import { Bot, type BotOptions } from '@geosfu/client/bot';

/** The bots gather candidates on 127.0.0.1 only: the nodes under test listen there. */
const LOOPBACK = ['127.0.0.1'];

/** A bot's options; `url` may be left to the pool's default node. */
export type PoolBotOptions = Omit<BotOptions, 'hostAddresses' | 'url'> & { url?: string };

export class BotPool {
  readonly #bots: Bot[] = [];
  readonly #defaultUrl: (() => string) | undefined;

  /** `defaultUrl`: the node a bot joins when its options name none (read at connect time). */
  constructor(defaultUrl?: () => string) {
    this.#defaultUrl = defaultUrl;
  }

  /** Connects a bot on loopback and keeps it for {@link closeAll}. */
  async connect(options: PoolBotOptions): Promise<Bot> {
    const url = options.url ?? this.#defaultUrl?.();
    if (url === undefined) throw new Error('BotPool.connect: no url and no default node');
    const bot = await Bot.connect({ ...options, url, hostAddresses: LOOPBACK });
    this.#bots.push(bot);
    return bot;
  }

  /** Closes every bot connected so far; one that fails to close does not stop the others. */
  async closeAll(): Promise<void> {
    await Promise.allSettled(this.#bots.splice(0).map((b) => b.close()));
  }
}
