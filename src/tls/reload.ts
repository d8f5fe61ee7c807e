import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { serverTlsOptions } from './server-tls.js';
import { clientCaProblems } from './trust.js';

/** The three files the API listener's TLS comes from, and their contents as loaded at start. */
export interface CertificateFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Wait for a burst of file events (a Secret volume swaps a symlink) to settle. */
const RELOAD_DEBOUNCE_MS = 500;

/**
 * Hot-reloads the server certificate, key and client CA when their files change
 * (cert-manager renewals, Secret updates), without dropping connections: new
 * handshakes use the new context, open connections keep the old one.
 *
 * A new set that does not parse, whose key does not match, or whose client CA bundle
 * would refuse every client (an intermediate without its root) is logged and ignored;
 * the old context stays. Node's `setSecureContext` resets every omitted option to
 * its default, so the full policy is passed each time. `onClientCa` learns the new
 * client CA bundle once it is in force (open connections are checked against it).
 * @returns a function that stops watching.
 */
export function watchServerCertificate(app: FastifyInstance, files: CertificateFiles, logger: Logger, onClientCa?: (ca: Buffer) => void): () => void {
  const server = app.server as unknown as { setSecureContext?: (o: object) => void };
  if (typeof server.setSecureContext !== 'function') return () => undefined;
  const dirs = new Set([files.certFile, files.keyFile, files.caFile].map((f) => dirname(f)));
  let timer: NodeJS.Timeout | undefined;
  let current = Buffer.concat([files.cert, files.key, files.ca]).toString('base64');
  const reload = (): void => {
    try {
      const cert = readFileSync(files.certFile);
      const key = readFileSync(files.keyFile);
      const ca = readFileSync(files.caFile);
      const next = Buffer.concat([cert, key, ca]).toString('base64');
      if (next === current) return;
      if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('--tls-key does not match --tls-cert');
      const caProblems = clientCaProblems(ca);
      if (caProblems.length > 0) throw new Error(`--client-ca: ${caProblems.join('; ')}`);
      const options = serverTlsOptions(cert, key, ca);
      createSecureContext(options); // throws on a bad set before we swap
      server.setSecureContext!(options);
      current = next;
      onClientCa?.(ca);
      logger.info({ cert: files.certFile, notAfter: new X509Certificate(cert).validTo }, 'TLS certificate reloaded');
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
