#!/usr/bin/env node
import { runBuilt } from '@geosfu/common/run-built';

await runBuilt('sfu-experiment', new URL('../dist/cli/experiment.js', import.meta.url));
