import { DEV_API_KEY, DEV_API_SECRET, SfuError, TokenService } from '@geosfu/common';

/**
 * The token service of a command-line tool: the node's SFU_API_KEY and SFU_API_SECRET, or the
 * dev key with `--dev` (or SFU_DEV). Without either, CONFIG_INVALID with `hint` (what to do).
 */
export function cliTokens(devFlag: boolean | undefined, hint: string): TokenService {
  const dev = devFlag === true || process.env.SFU_DEV === '1' || process.env.SFU_DEV === 'true';
  const key = process.env.SFU_API_KEY ?? (dev ? DEV_API_KEY : undefined);
  const secret = process.env.SFU_API_SECRET ?? (dev ? DEV_API_SECRET : undefined);
  if (!key || !secret) throw new SfuError('CONFIG_INVALID', hint);
  return new TokenService(key, secret);
}
