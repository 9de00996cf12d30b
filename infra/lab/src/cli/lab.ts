#!/usr/bin/env node
/**
 * sfu-lab: bring the WAN lab up (namespaces, emulated links, Redis and the three nodes) and
 * keep it up until Ctrl-C; tear down whatever a crashed lab left behind.
 *
 *   sfu-lab up [--profile clean] [--no-cluster]
 *   sfu-lab down
 *   sfu-lab status
 */
import { parseArgs } from 'node:util';
import { LabTarget, NODE_REGIONS } from '../experiment/targets.js';
import { LAB_HOSTS, WanLab } from '../lab.js';
import { destroyLab, LAB_PREFIX, listLabs, listNamespaces } from '../netns.js';
import { HOST_NAMES, loadProfileFile, resolveProfile } from '../profiles.js';

const USAGE = `usage:
  sfu-lab up [--profile NAME] [--no-cluster] [--stats-every 10s]
      builds namespaces ${HOST_NAMES.join(', ')} and the link emulator; starts
      redis-server in core and SFU nodes in ${NODE_REGIONS.join(', ')} (unless --no-cluster);
      stays in the foreground printing link counters; Ctrl-C tears everything down
  sfu-lab down      removes every lab (namespaces, veths, processes), e.g. after a crash
  sfu-lab status    lists labs and their namespaces`;

const out = (line: string) => process.stdout.write(`${line}\n`);

function fail(message: string): never {
  process.stderr.write(`sfu-lab: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

async function up(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string', default: 'clean' },
      'no-cluster': { type: 'boolean', default: false },
      'stats-every': { type: 'string', default: '10' },
    },
  });
  if (process.getuid?.() !== 0) fail('the lab creates network namespaces: run it as root');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let lab: WanLab;
  let close: () => Promise<void>;
  if (values['no-cluster']) {
    const profile = resolveProfile(loadProfileFile(), values.profile);
    lab = await WanLab.create({ profile, log });
    close = () => lab.destroy();
  } else {
    const target = await LabTarget.start({ profile: values.profile, log });
    lab = target.lab;
    close = () => target.close();
  }
  out(`lab ${lab.id} is up (profile "${values.profile}"):`);
  out('  host        namespace            overlay (emulated WAN)   management (from here)');
  for (const name of HOST_NAMES) {
    out(
      `  ${name.padEnd(11)} ${lab.ns(name).padEnd(20)} ${LAB_HOSTS[name].overlay.padEnd(24)} ${lab.managementAddress(name)}`,
    );
  }
  if (!values['no-cluster']) {
    out(
      '  nodes: http://<overlay>:7880 from the client namespaces, /metrics on the management address',
    );
  }
  out(`  run a command on a host: ip netns exec ${lab.ns('eu-client')} <command>`);
  out('  Ctrl-C tears the lab down.');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const every = Math.max(1, Number.parseFloat(values['stats-every'])) * 1000;
  setInterval(() => {
    void lab
      .routerStats()
      .then((s) => {
        const busy = s.links.filter((l) => l.forwarded > 0);
        const total = busy.reduce((a, l) => a + l.forwarded, 0);
        out(
          `emulator: ${total} packets forwarded on ${busy.length} links, cpu ${s.cpuMs.user + s.cpuMs.system} ms, no-route ${s.noRoute}`,
        );
      })
      .catch(() => {});
  }, every);
}

async function down(): Promise<void> {
  const ids = await listLabs();
  if (ids.length === 0) out('no lab to tear down');
  for (const id of ids) {
    const removed = await destroyLab(id);
    out(`lab ${id}: removed ${removed.length} namespace(s)`);
  }
}

async function status(): Promise<void> {
  const ids = await listLabs();
  if (ids.length === 0) out('no lab is up');
  const namespaces = await listNamespaces();
  for (const id of ids) {
    out(`lab ${id}: ${namespaces.filter((n) => n.startsWith(`${LAB_PREFIX}${id}-`)).join(' ')}`);
  }
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, () => Promise<void>> = {
  up: () => up(rest),
  down,
  status,
};
const handler = command ? commands[command] : undefined;
if (!handler) {
  if (command && command !== '--help' && command !== '-h') fail(`unknown command "${command}"`);
  out(USAGE);
} else {
  handler().catch((error: unknown) => {
    process.stderr.write(`sfu-lab: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
