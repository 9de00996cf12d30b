import {
  type AccessToken,
  CreateRoomRequest,
  MuteTrackRequest,
  ROOM_SERVICE_ROUTES,
  type RoomServiceGrant,
  type RoomServiceRoute,
  roomServiceOpenApi,
  SendDataRequest,
  SfuError,
  type TokenService,
  UpdateParticipantRequest,
} from '@geosfu/common';
import { type NextFunction, type Request, type Response, Router } from 'express';
import { z } from 'zod';
import type { RoomService } from './RoomService.js';
import { bearerToken } from './routeApi.js';

type Handler = (req: Request) => Promise<unknown>;

/**
 * The room service API (routes in `ROOM_SERVICE_ROUTES`, docs in the OpenAPI document at
 * `GET /v1/openapi.json`): the same router on every node and on sfu-directory. Every call
 * needs a bearer token with the route's grant; `roomAdmin` only for the token's own room.
 * Bodies are parsed by the schemas of `@geosfu/common` (BAD_REQUEST naming the field).
 */
export function roomServiceRouter(
  service: RoomService,
  tokens: TokenService,
  version: string,
): Router {
  const router = Router();
  const document = roomServiceOpenApi(version);
  router.get('/v1/openapi.json', (_req, res) => {
    res.json(document);
  });
  const handlers: Record<RoomServiceRoute, Handler> = {
    createRoom: (req) => service.createRoom(body(CreateRoomRequest, req)),
    listRooms: async () => ({ rooms: await service.listRooms() }),
    getRoom: (req) => service.getRoom(param(req, 'room')),
    deleteRoom: (req) => service.deleteRoom(param(req, 'room')),
    listParticipants: async (req) => ({
      participants: await service.listParticipants(param(req, 'room')),
    }),
    getParticipant: (req) => service.getParticipant(param(req, 'room'), param(req, 'identity')),
    removeParticipant: (req) =>
      service.removeParticipant(param(req, 'room'), param(req, 'identity')),
    updateParticipant: (req) =>
      service.updateParticipant(
        param(req, 'room'),
        param(req, 'identity'),
        body(UpdateParticipantRequest, req),
      ),
    muteTrack: (req) =>
      service.muteTrack(param(req, 'room'), param(req, 'identity'), body(MuteTrackRequest, req)),
    sendData: (req) => service.sendData(param(req, 'room'), body(SendDataRequest, req)),
  };
  for (const [name, route] of Object.entries(ROOM_SERVICE_ROUTES) as [
    RoomServiceRoute,
    (typeof ROOM_SERVICE_ROUTES)[RoomServiceRoute],
  ][]) {
    const handle = handlers[name];
    router[route.method](route.path, async (req: Request, res: Response, next: NextFunction) => {
      try {
        authorize(await tokens.verify(bearerToken(req)), route.grant, req.params.room);
        res.status(route.status).json(await handle(req));
      } catch (error) {
        next(error);
      }
    });
  }
  return router;
}

function authorize(token: AccessToken, grant: RoomServiceGrant, room: unknown): void {
  const g = token.grants;
  // roomCreate and roomList are cluster-wide; roomAdmin is for the token's room only. A
  // token that may create and delete any room may also manage any room's participants.
  const allowed =
    grant === 'roomAdmin' ? g.roomCreate || (g.roomAdmin && room === token.room) : g[grant];
  if (!allowed) {
    throw new SfuError(
      'PERMISSION_DENIED',
      `this call needs a token with the ${grant} grant${grant === 'roomAdmin' ? ` for room "${String(room)}"` : ''} (sfu-node token --grant ${grant})`,
    );
  }
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > 128)
    throw new SfuError('BAD_REQUEST', `${name} must be 1 to 128 characters`);
  return value;
}

function body<T>(schema: z.ZodType<T>, req: Request): T {
  const parsed = schema.safeParse(req.body);
  if (!parsed.success)
    throw new SfuError('BAD_REQUEST', `invalid request body: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
