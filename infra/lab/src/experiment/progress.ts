/** A one-line progress bar on a terminal; a line per step otherwise (CI logs, pipes). */
import type { Progress } from './runner.js';

const WIDTH = 28;

export function progressPrinter(stream: NodeJS.WriteStream = process.stderr) {
  let lastLine = '';
  let lastLoggedTenth = -1;
  return {
    update(p: Progress): void {
      const fraction = Math.min(1, p.durationMs > 0 ? p.elapsedMs / p.durationMs : 0);
      const filled = Math.round(fraction * WIDTH);
      const bar = `${'█'.repeat(filled)}${'░'.repeat(WIDTH - filled)}`;
      const detail = (['eu', 'vn'] as const)
        .map((peer) => {
          const s = p.latest[peer];
          if (!s) return undefined;
          const from = peer === 'eu' ? 'VN→EU' : 'EU→VN';
          const lat = s.latencyMs.mean === null ? '—' : `${s.latencyMs.mean.toFixed(1)} ms`;
          return `${from} ${lat} ${(s.bitrateKbps / 1000).toFixed(2)} Mbit/s`;
        })
        .filter(Boolean)
        .join(' | ');
      const line = `scenario ${p.scenario.id} (${p.index + 1}/${p.count}) ${p.phase.padEnd(9)} ${bar} ${Math.round(
        fraction * 100,
      )
        .toString()
        .padStart(
          3,
        )}% ${Math.round(p.elapsedMs / 1000)}/${Math.round(p.durationMs / 1000)} s ${detail}`;
      if (stream.isTTY) {
        stream.write(`\r${line.slice(0, (stream.columns ?? 160) - 1).padEnd(lastLine.length)}`);
        if (p.phase === 'stopping') stream.write('\n');
      } else {
        const tenth = Math.floor(fraction * 10) + p.index * 100;
        if (tenth !== lastLoggedTenth || p.phase !== 'measuring') stream.write(`${line}\n`);
        lastLoggedTenth = tenth;
      }
      lastLine = line;
    },
  };
}
