#!/usr/bin/env node
import { runBuilt } from '@geosfu/common/run-built';

await runBuilt('sfu-node', new URL('../dist/cli.js', import.meta.url));
