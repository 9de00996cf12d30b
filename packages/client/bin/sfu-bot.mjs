#!/usr/bin/env node
import { runBuilt } from '@geosfu/common/run-built';

await runBuilt('sfu-bot', new URL('../dist/bot/cli.js', import.meta.url));
