// The workspace bins (sfu-node, sfu-bot, sfu-directory, sfu-lab, sfu-experiment) are small
// committed files that load the built entry point. npm links a workspace's bins at `npm ci`,
// before `npm run build` has made dist/: a bin pointing into dist/ would not be linked at all,
// and `npx sfu-node` would then ask the registry for a stranger's package of that name.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Runs the built module `entry` (a file URL) as the program `name`, or says how to build it.
 * @param {string} name the bin's name, for the message
 * @param {URL} entry the built entry point, e.g. `new URL('../dist/cli.js', import.meta.url)`
 */
export async function runBuilt(name, entry) {
  const path = fileURLToPath(entry);
  if (!existsSync(path)) {
    process.stderr.write(
      `${name}: ${relative(process.cwd(), path)} is missing: run \`npm run build\` first (in the repository root)\n`,
    );
    process.exit(1);
  }
  await import(entry.href);
}
