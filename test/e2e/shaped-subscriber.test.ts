/**
 * Acceptance of issue 14, one node: a publisher P and an unconstrained subscriber U in
 * Chromium in the root namespace, and a shaped subscriber S (which also publishes) in
 * Chromium inside a network namespace whose downlink is shaped with `tc tbf` at 600 kbit/s.
 * After warm-up (S decodes every remote video and its layers settled below the top), over a
 * 15 s window S decodes at least 12 fps of every remote video with under 2 s frozen, and U
 * receives at least 640 px wide video; once the shaper is removed, S is back on the top layer
 * within 15 s. The scenario, and why S pins P's video high, is in shaped-room.ts.
 *
 * The node listens and gathers on the root end of the veth: S reaches it there (through the
 * shaper), P and U locally.
 */
import { after, before, describe, test } from 'node:test';
import { openBrowser } from '../helpers/browser.js';
import { createShapedNamespace, type ShapedNamespace } from '../helpers/netns.js';
import { type NodeProcess, startNode } from '../helpers/node-process.js';
import { freePort } from '../helpers/ports.js';
import { reportOnFailure } from './page-view.js';
import { buildDemoPage } from './setup.js';
import { runShapedRoom, SHAPED_KBIT } from './shaped-room.js';

describe('a shaped subscriber on the publisher node', () => {
  let net: ShapedNamespace;
  let node: NodeProcess;

  before(async () => {
    buildDemoPage();
    net = await createShapedNamespace({ rateKbit: SHAPED_KBIT });
    const port = await freePort();
    node = await startNode({
      args: net.nodeArgs(port),
    });
  });

  after(async () => {
    await node?.stop();
    await net?.close();
  });

  test('decodes every video at 12 fps under the shaper, U gets 640 px, S recovers the top layer', {
    timeout: 300_000,
  }, async (t) => {
    const origin = new URL(node.url).origin;
    const browsers = {
      root: await openBrowser({ t, extraArgs: net.chromiumArgs(origin) }),
      shaped: await openBrowser({
        t,
        executablePath: net.chromiumPath,
        extraArgs: net.chromiumArgs(origin),
      }),
    };
    const markPassed = reportOnFailure(
      t,
      {
        get logs() {
          return Object.values(browsers).flatMap((b) => b.logs);
        },
      },
      [node],
    );
    const url = (q: URLSearchParams) => `${origin}/?${q}`;
    await runShapedRoom((line) => t.diagnostic(line), {
      browsers,
      net,
      urls: { p: url, u: url, s: url },
    });
    markPassed();
  });
});
