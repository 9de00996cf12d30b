#!/usr/bin/env node
import { runBuilt } from '@geosfu/common/run-built';

await runBuilt('sfu-directory', new URL('../dist/directoryCli.js', import.meta.url));
