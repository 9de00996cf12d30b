#!/usr/bin/env node
import { runBuilt } from '@geosfu/common/run-built';

await runBuilt('sfu-lab', new URL('../dist/cli/lab.js', import.meta.url));
