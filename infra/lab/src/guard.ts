/**
 * Started (detached) by every lab with a pipe on its stdin. When the pipe closes, because the
 * lab was destroyed or because its process died however it died, the guard tears the lab down:
 * no namespace, veth or process outlives a crashed or killed runner.
 */
import { rmSync } from 'node:fs';
import { destroyLab } from './netns.js';

const id = Number(process.argv[2]);
const tmpDir = process.argv[3];
if (!Number.isInteger(id) || id < 0) {
  process.stderr.write('usage: guard <lab id> [temp dir]\n');
  process.exit(2);
}
// The guard outlives its parent's terminal; signals meant for the parent are not for it.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
process.stdin.resume();
process.stdin.on('close', () => {
  destroyLab(id)
    .catch(() => {})
    .finally(() => {
      if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
      process.exit(0);
    });
});
