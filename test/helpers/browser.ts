/**
 * Headless Chromium for end-to-end tests: Debian's /usr/bin/chromium driven by playwright-core,
 * with fake camera and microphone, in a fresh profile directory that is removed on close.
 *
 *   test('...', async (t) => {
 *     const browser = await openBrowser({ t });  // closed by t.after, pass or fail
 *     const page = await browser.newPage();
 *     await page.goto(url);
 *   });
 *
 * Closing is registered with node:test: `t.after` when a test context is passed, the
 * top-level `after` otherwise (then call openBrowser at the top level of the file, not inside
 * a `before` hook: there node:test attaches the `after` to the hook itself, which closes the
 * browser as soon as the hook returns). A process `exit` handler removes the profile as a last
 * resort, and Playwright kills the browser when the process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { onExit } from './exit.js';
import { favourBrowser } from './node-priority.js';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The flags this project runs Chromium with (Playwright adds its automation defaults). */
export const CHROMIUM_FLAGS: readonly string[] = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
]);

export interface OpenBrowserOptions {
  /** A test context: close with `t.after` instead of the file-level `after` hook. */
  t?: { after(fn: () => Promise<void> | void): void };
  /** Page size (default 1280x720). */
  viewport?: { width: number; height: number };
  /** Print the pages' console output and errors to stderr as they happen. */
  verbose?: boolean;
  /** Another Chromium binary or wrapper (netns.ts runs Chromium inside a namespace). */
  executablePath?: string;
  /** Flags on top of CHROMIUM_FLAGS. */
  extraArgs?: readonly string[];
  /**
   * A publisher whose encoder the test times: its session gets a larger CPU share than the
   * other browsers' (node-priority.ts).
   */
  favoured?: boolean;
}

export interface BrowserHandle {
  readonly context: BrowserContext;
  /** The profile directory (removed on close). */
  readonly userDataDir: string;
  /** Console messages and page errors of every page, as `[page N] type: text`. */
  readonly logs: string[];
  newPage(): Promise<Page>;
  /** Closes the browser and removes its profile. Idempotent. */
  close(): Promise<void>;
}

const openProfiles = new Set<string>();
onExit(() => {
  for (const dir of openProfiles) rmSync(dir, { recursive: true, force: true });
});

export async function openBrowser(options: OpenBrowserOptions = {}): Promise<BrowserHandle> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'geosfu-chromium-'));
  openProfiles.add(userDataDir);
  const removeProfile = () => {
    rmSync(userDataDir, { recursive: true, force: true });
    openProfiles.delete(userDataDir);
  };

  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: options.executablePath ?? CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...(options.extraArgs ?? [])],
      viewport: options.viewport ?? { width: 1280, height: 720 },
      timeout: 30_000,
    });
  } catch (error) {
    removeProfile();
    throw error;
  }

  const logs: string[] = [];
  let pageCount = 0;
  let closing: Promise<void> | undefined;

  const handle: BrowserHandle = {
    context,
    userDataDir,
    logs,
    async newPage() {
      const page = await context.newPage();
      const n = ++pageCount;
      const log = (line: string) => {
        logs.push(`[page ${n}] ${line}`);
        if (options.verbose) process.stderr.write(`[page ${n}] ${line}\n`);
      };
      page.on('console', (message) => log(`${message.type()}: ${message.text()}`));
      page.on('pageerror', (error) => log(`pageerror: ${error.message}`));
      return page;
    },
    close() {
      closing ??= (async () => {
        try {
          await context.close();
        } finally {
          removeProfile();
        }
      })();
      return closing;
    },
  };

  if (options.favoured) favourBrowser(userDataDir);
  // The persistent context opens with one blank page; close it so that pages are only ours.
  for (const page of context.pages()) await page.close();

  if (options.t) options.t.after(() => handle.close());
  else after(() => handle.close());
  return handle;
}
