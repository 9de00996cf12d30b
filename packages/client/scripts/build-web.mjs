#!/usr/bin/env node
/**
 * Builds the demo page into dist/web: app.js (esbuild bundle of src/web/main.ts), index.html
 * and style.css. `--watch` rebuilds on change; `--minify` minifies.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'web');
const out = join(root, 'dist', 'web');
const watch = process.argv.includes('--watch');
const minify = process.argv.includes('--minify');

const STATIC_FILES = ['index.html', 'style.css'];

async function copyStatic() {
  await Promise.all(STATIC_FILES.map((file) => copyFile(join(src, file), join(out, file))));
}

/** Copies the static files again after every rebuild (so --watch picks up HTML and CSS too). */
const copyStaticPlugin = {
  name: 'copy-static',
  setup(build) {
    for (const file of STATIC_FILES) {
      build.onLoad({ filter: /\.ts$/ }, () => undefined);
      build.onStart(() => undefined);
      void file;
    }
    build.onEnd(async (result) => {
      if (result.errors.length === 0) await copyStatic();
    });
  },
};

/** @type {import('esbuild').BuildOptions} */
const options = {
  absWorkingDir: root,
  entryPoints: { app: join(src, 'main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minify,
  // Bundle the TypeScript sources of the workspace packages (their `source` export condition).
  conditions: ['source'],
  legalComments: 'linked',
  logLevel: 'info',
  plugins: [copyStaticPlugin],
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
  console.log(`watching ${src} -> ${out}`);
} else {
  await esbuild.build(options);
}
