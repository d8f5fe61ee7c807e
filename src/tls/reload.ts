import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { serverTlsOptions } from './server-tls.js';

/** Wait for a burst of file events (a Secret volume swaps a symlink) to settle. */
const RELOAD_DEBOUNCE_MS = 500;

/**
 * Hot-reloads the server certificate, key and client CA when their files change
 * (cert-manager renewals, Secret updates), without dropping connections: new
 * handshakes use the new context, open connections keep the old one.
 *
 * A new set that does not parse or whose key does not match is logged and ignored;
 * the old context stays. Node's `setSecureContext` resets every omitted option to
 * its default, so the full policy is passed each time.
 * @returns a function that stops watching.
 */
export function watchServerCertificate(app: FastifyInstance, config: Config, logger: Logger): () => void {
  const server = app.server as unknown as { setSecureContext?: (o: object) => void };
  if (typeof server.setSecureContext !== 'function') return () => undefined;
  const dirs = new Set([config.tlsCertFile, config.tlsKeyFile, config.clientCaFile].map((f) => dirname(f)));
  let timer: NodeJS.Timeout | undefined;
  let current = Buffer.concat([config.tlsCert, config.tlsKey, config.clientCa]).toString('base64');
  const reload = (): void => {
    try {
      const cert = readFileSync(config.tlsCertFile);
      const key = readFileSync(config.tlsKeyFile);
      const ca = readFileSync(config.clientCaFile);
      const next = Buffer.concat([cert, key, ca]).toString('base64');
      if (next === current) return;
      if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('--tls-key does not match --tls-cert');
      const options = serverTlsOptions(cert, key, ca);
      createSecureContext(options); // throws on a bad set before we swap
      server.setSecureContext!(options);
      current = next;
      logger.info({ cert: config.tlsCertFile, notAfter: new X509Certificate(cert).validTo }, 'TLS certificate reloaded');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous certificate');
    }
  };
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    try {
      watchers.push(watch(dir, () => {
        clearTimeout(timer);
        timer = setTimeout(reload, RELOAD_DEBOUNCE_MS);
      }));
    } catch (err) {
      logger.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; certificates will not hot-reload');
    }
  }
  return () => {
    clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
