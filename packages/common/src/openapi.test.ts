import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import { roomServiceOpenApi } from './openapi.js';
import { ROOM_SERVICE_ROUTES } from './roomService.js';

test('the generated OpenAPI document is valid OpenAPI 3.1', async () => {
  const document = roomServiceOpenApi('0.0.0-test');
  const result = await validate(structuredClone(document) as never);
  assert.ok(result.valid, result.valid ? '' : compileErrors(result));
});

test('the document has every route of the table, and nothing else', () => {
  const document = roomServiceOpenApi('0.0.0-test') as {
    paths: Record<string, Record<string, { operationId: string }>>;
  };
  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => `${op.operationId} ${method} ${path}`),
  );
  const expected = [
    ...Object.entries(ROOM_SERVICE_ROUTES).map(
      ([name, r]) => `${name} ${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`,
    ),
    'openApi get /v1/openapi.json',
  ];
  assert.deepEqual(operations.sort(), expected.sort());
});
