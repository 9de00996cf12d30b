/**
 * Cleanups that run when the test process ends however it ends: normally ('exit'), or killed
 * by SIGTERM, SIGINT or SIGHUP (a CI timeout, Ctrl-C, a runner killed from outside), whose
 * default action skips 'exit' handlers and would leave servers and temp dirs behind.
 * Each cleanup must be synchronous (kill -9, rmSync).
 */
const cleanups: (() => void)[] = [];

function runAll(): void {
  for (const cleanup of cleanups.splice(0)) {
    try {
      cleanup();
    } catch {
      // One failing cleanup must not keep the others from running; the process is ending.
    }
  }
}

process.on('exit', runAll);
for (const [signal, number] of [
  ['SIGTERM', 15],
  ['SIGINT', 2],
  ['SIGHUP', 1],
] as const) {
  process.once(signal, () => {
    runAll();
    process.exit(128 + number);
  });
}

/** Registers `cleanup` to run when the process ends, by exit or by a signal. */
export function onExit(cleanup: () => void): void {
  cleanups.push(cleanup);
}
