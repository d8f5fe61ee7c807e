/**
 * Writes the committed `openapi.json` from the route schemas (`make openapi`), or with
 * `--check` exits 1 when the committed file differs. The document is what
 * `GET /openapi.json` serves; test/unit/openapi.test.ts fails when the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildServer } from '../src/server.js';
import { ALLOW_ALL } from '../src/authz/authorizer.js';
import { GuardrailPolicy } from '../src/kube/guardrails.js';
import { ChangeStream } from '../src/kube/change-stream.js';

/** Where the committed document lives. */
export const OPENAPI_FILE = join(import.meta.dirname, '..', 'openapi.json');

/** The OpenAPI document of the API app, as `GET /openapi.json` answers it, serialized stably (2-space JSON, final newline). */
export async function generateOpenApi(): Promise<string> {
  const deployments = { get: () => undefined, list: () => [], hasSynced: () => true, subscribe: () => () => undefined, resourceVersion: () => '' };
  const app = buildServer({
    authorizer: ALLOW_ALL, audit: { write: () => undefined, close: async () => undefined },
    lists: { hasSynced: () => true, namespaces: () => [], list: async () => ({ body: Buffer.from('[]'), etag: '"e"', resourceVersion: '1', items: 0 }) },
    // The extensions, so that their routes and parameters are in the document.
    scale: { deployments, autoscalers: { get: () => undefined, list: () => [], hasSynced: () => true }, guardrails: new GuardrailPolicy(0) },
    watch: { stream: new ChangeStream(deployments), deployments },
    replicas: { get: () => { throw new Error('unused'); }, read: () => { throw new Error('unused'); }, set: () => { throw new Error('unused'); } },
    apiHealth: async () => ({ ok: true }),
    readiness: { check: () => ({ ready: true }) },
    logger: pino({ level: 'silent' }),
  });
  try {
    const res = await app.inject('/openapi.json');
    if (res.statusCode !== 200) throw new Error(`GET /openapi.json answered ${res.statusCode}`);
    return `${JSON.stringify(res.json(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const doc = await generateOpenApi();
  if (process.argv.includes('--check')) {
    if (readFileSync(OPENAPI_FILE, 'utf8') !== doc) {
      console.error('openapi.json is out of date: run make openapi');
      process.exit(1);
    }
  } else {
    writeFileSync(OPENAPI_FILE, doc);
    console.log(`wrote ${OPENAPI_FILE}`);
  }
}
