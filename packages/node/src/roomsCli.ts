import { parseArgs } from 'node:util';
import { RoomServiceClient, SfuError } from '@geosfu/common';
import { cliTokens } from './cliTokens.js';

export const ROOMS_USAGE = `  sfu-node rooms list|get ROOM|delete ROOM|kick ROOM IDENTITY|mute ROOM IDENTITY TRACK [--unmute]
                 --url http://node:7880 [--token JWT | --dev]`;

/**
 * `sfu-node rooms ...`: the room service API from the command line, against any node or
 * sfu-directory. The token is `--token`, or minted from SFU_API_KEY/SFU_API_SECRET (or the
 * dev credentials with `--dev`) with the roomCreate and roomList grants. Prints JSON.
 */
export async function rooms(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string', default: process.env.SFU_URL ?? 'http://localhost:7880' },
      token: { type: 'string' },
      dev: { type: 'boolean' },
      unmute: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [verb, room, identity, trackId] = positionals;
  const client = new RoomServiceClient({ url: values.url, token: await tokenFor(values) });
  const need = (value: string | undefined, what: string): string => {
    if (!value) throw new SfuError('INVALID_ARGUMENT', `rooms ${verb} needs ${what}`);
    return value;
  };
  let out: unknown;
  switch (verb) {
    case 'list':
      out = await client.listRooms();
      break;
    case 'get':
      out = await client.getRoom(need(room, 'ROOM'));
      break;
    case 'delete':
      out = { removed: await client.deleteRoom(need(room, 'ROOM')) };
      break;
    case 'kick':
      await client.removeParticipant(need(room, 'ROOM'), need(identity, 'ROOM IDENTITY'));
      out = { removed: identity };
      break;
    case 'mute':
      out = await client.mutePublishedTrack(
        need(room, 'ROOM'),
        need(identity, 'ROOM IDENTITY TRACK'),
        need(trackId, 'ROOM IDENTITY TRACK'),
        values.unmute !== true,
      );
      break;
    default:
      throw new SfuError('INVALID_ARGUMENT', `rooms: unknown verb "${verb ?? ''}"\n${ROOMS_USAGE}`);
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

async function tokenFor(values: { token?: string; dev?: boolean }): Promise<string> {
  if (values.token) return values.token;
  const tokens = cliTokens(
    values.dev,
    'give --token, or set SFU_API_KEY and SFU_API_SECRET, or pass --dev for a dev node',
  );
  return tokens.mint({
    room: '*',
    identity: 'sfu-node-rooms',
    grants: { roomCreate: true, roomList: true },
    ttlSeconds: 300,
  });
}
