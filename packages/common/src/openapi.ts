import {
  OpenAPIRegistry,
  OpenApiGeneratorV31,
  type RouteConfig,
} from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { TrackInfo } from './protocol.js';
import {
  CreateRoomRequest,
  DeliveryResponse,
  ErrorResponse,
  ListParticipantsResponse,
  ListRoomsResponse,
  MuteTrackRequest,
  ParticipantUpdate,
  ROOM_SERVICE_ROUTES,
  RoomInfo,
  RoomParticipant,
  type RoomServiceRoute,
  SendDataRequest,
  UpdateParticipantRequest,
  WEBHOOK_SIGNATURE_HEADER,
  WebhookEvent,
} from './roomService.js';

/** What each route takes and answers, by the route's name in ROOM_SERVICE_ROUTES. */
const BODIES: Record<RoomServiceRoute, { request?: z.ZodType; response: z.ZodType }> = {
  createRoom: { request: CreateRoomRequest, response: RoomInfo },
  listRooms: { response: ListRoomsResponse },
  getRoom: { response: RoomInfo },
  deleteRoom: { response: DeliveryResponse },
  listParticipants: { response: ListParticipantsResponse },
  getParticipant: { response: RoomParticipant },
  removeParticipant: { response: DeliveryResponse },
  updateParticipant: { request: UpdateParticipantRequest, response: ParticipantUpdate },
  muteTrack: { request: MuteTrackRequest, response: TrackInfo },
  sendData: { request: SendDataRequest, response: DeliveryResponse },
};

/**
 * The room service API as an OpenAPI 3.1 document, generated from the zod schemas the
 * server validates with (zod-to-openapi), so the document cannot drift from the code. Served
 * by every node and sfu-directory at `GET /v1/openapi.json`.
 */
export function roomServiceOpenApi(version: string): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'An access token (sfu-node token) with the grant the operation names: roomCreate, roomList, or roomAdmin for the token’s own room.',
  });
  for (const [name, route] of Object.entries(ROOM_SERVICE_ROUTES) as [
    RoomServiceRoute,
    (typeof ROOM_SERVICE_ROUTES)[RoomServiceRoute],
  ][]) {
    const bodies = BODIES[name];
    const params = route.path.match(/:(\w+)/g)?.map((p) => p.slice(1)) ?? [];
    const config: RouteConfig = {
      operationId: name,
      method: route.method,
      path: route.path.replace(/:(\w+)/g, '{$1}'),
      summary: route.summary,
      description: `Grant: \`${route.grant}\`${route.grant === 'roomAdmin' ? ' (for this room)' : ''}.`,
      security: [{ [bearer.name]: [] }],
      request: {
        ...(params.length > 0
          ? {
              params: z.object(
                Object.fromEntries(params.map((p) => [p, z.string().min(1).max(128)])),
              ),
            }
          : {}),
        ...(bodies.request
          ? {
              body: { required: true, content: { 'application/json': { schema: bodies.request } } },
            }
          : {}),
      },
      responses: {
        [route.status]: {
          description: 'done',
          content: { 'application/json': { schema: bodies.response } },
        },
        default: {
          description: 'an error with a code (docs/PROTOCOL.md, Errors)',
          content: { 'application/json': { schema: ErrorResponse } },
        },
      },
    };
    registry.registerPath(config);
  }
  registry.registerPath({
    operationId: 'openApi',
    method: 'get',
    path: '/v1/openapi.json',
    summary: 'This document',
    responses: {
      200: {
        description: 'the OpenAPI document',
        content: { 'application/json': { schema: z.object({}).passthrough() } },
      },
    },
  });
  registry.registerWebhook({
    method: 'post',
    path: 'event',
    operationId: 'webhookEvent',
    summary: 'A room event, sent once by the cluster to every SFU_WEBHOOK_URLS address',
    description: `Signed: header \`${WEBHOOK_SIGNATURE_HEADER}: t=<epoch ms>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by SFU_WEBHOOK_KEY>\`. Answer 2xx; anything else is retried with back-off.`,
    request: { body: { content: { 'application/json': { schema: WebhookEvent } } } },
    responses: { 200: { description: 'received' } },
  });
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'geosfu room service',
      version,
      description:
        'Manage rooms across the cluster: any node (or sfu-directory) takes any call; the node that holds the participant carries it out.',
    },
  });
  return document as unknown as Record<string, unknown>;
}
