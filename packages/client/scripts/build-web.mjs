#!/usr/bin/env node
/**
 * Builds the demo page into dist/web: app.js (esbuild bundle of src/web/main.ts, with its
 * source map), index.html and style.css.
 *
 *   node scripts/build-web.mjs            build once
 *   node scripts/build-web.mjs --watch    rebuild on every change (TypeScript, HTML, CSS)
 *   node scripts/build-web.mjs --minify   minified bundle
 */
import { watch as watchFiles } from 'node:fs';
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

/**
 * zod re-exports all of its ~50 error-message locales as a namespace (`z.locales`), which
 * defeats tree shaking and makes up half of the bundle. The page only uses English messages
 * (zod configures `en` itself, from its own file), so the locales index is replaced by one that
 * exports `en` alone.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
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
  // Bundle the TypeScript sources of the workspace packages (their `source` export condition),
  // so the page builds without building @geosfu/common first.
  conditions: ['source'],
  logLevel: 'info',
  plugins: [zodEnglishOnly],
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
  await copyStatic();
  watchFiles(src, (_event, file) => {
    if (file && STATIC_FILES.includes(file)) {
      copyStatic().then(
        () => process.stdout.write(`copied ${file}\n`),
        (error) => process.stderr.write(`could not copy ${file}: ${error.message}\n`),
      );
    }
  });
  process.stdout.write(`watching ${src} -> ${out}\n`);
} else {
  await esbuild.build(options);
  await copyStatic();
}
