import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { buildHealthServer, buildServer } from './server.js';
import { KubeClient } from './kube/kube-client.js';
import { Reflector, type ReflectorOptions, type ReflectorStatus } from './kube/reflector.js';
import { DEPLOYMENTS } from './kube/deployments.js';
import { HORIZONTAL_POD_AUTOSCALERS } from './kube/hpa.js';
import { GuardrailPolicy } from './kube/guardrails.js';
import { ChangeStream } from './kube/change-stream.js';
import { CachedDeploymentLists } from './views/deployment-lists.js';
import { deploymentReadThrough } from './kube/read-through.js';
import { KubeReplicaService } from './kube/replicas.js';
import { AccessCheck, apiServerReadyz, cachedApiHealth, proxyHealth, type AccessResult } from './kube/api-health.js';
import type { Readiness } from './routes/health.js';
import { reauthorizeEveryMs } from './routes/watch.js';
import { watchServerCertificate } from './tls/reload.js';
import { serverTlsOptions } from './tls/server-tls.js';
import { TrustedCas } from './tls/trust.js';
import { RefusalLog } from './tls/refusal-log.js';
import { createMetrics, disabledMetrics } from './metrics/registry.js';
import type { AuthzRecorder } from './metrics/recorders.js';
import { VERSION } from './version.js';
import { recordRefusal } from './tls/handshake-metrics.js';
import { ALLOW_ALL, type Authorizer } from './authz/authorizer.js';
import { SubjectAccessReviewAuthorizer } from './authz/subject-access-review.js';
import { CachingAuthorizer } from './authz/decision-cache.js';
import { openAuditLog } from './audit/audit-log.js';

/** A watch may be disconnected this long (reconnecting) before `/readyz` reports the cache stale. */
export const STALE_AFTER_MS = 60_000;

/** A running proxy: its addresses and a graceful stop. */
export interface RunningProxy {
  apiUrl: string;
  healthUrl: string;
  /** Fails `/readyz`, waits `shutdownDelaySeconds`, drains in-flight requests (bounded), stops watches. */
  shutdown(signal: string): Promise<void>;
}

/** Creates the process logger: JSON (pino) on stdout (or `destination`), credentials redacted wherever they appear. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: { service: 'k8s-api-proxy' },
    redact: {
      paths: ['*.authorization', '*.Authorization', '*.headers.authorization', '*.*.headers.authorization', 'err.config.headers', '*.token', '*.key', 'config.tlsKey'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * Readiness from the caches' state: all synced, each watching or recently in contact, not
 * shutting down; and the proxy's own access intact: a list or watch refused with 401/403,
 * or the last {@link AccessCheck} refused, is "not ready" at once (no 60 s grace), since
 * stale reads from a proxy that lost its credentials are not service.
 */
export function cacheReadiness(reflectors: { status(): ReflectorStatus }[], isShuttingDown: () => boolean, now = () => Date.now(), access?: { last(): AccessResult | undefined }): Readiness {
  return {
    check() {
      if (isShuttingDown()) return { ready: false, message: 'shutting down' };
      for (const r of reflectors) {
        const s = r.status();
        if (s.lastErrorStatus === 401) return { ready: false, message: `${s.resource} list/watch: API server rejects the proxy's credentials (HTTP 401)` };
        if (s.lastErrorStatus === 403) return { ready: false, message: `${s.resource} list/watch: API server refuses the proxy (HTTP 403): its credentials or RBAC role` };
        // Messages stay generic: the probe port is unauthenticated. The log has the causes.
        if (!s.synced) return { ready: false, message: `${s.resource} cache not synced yet (${s.failures} failed attempts)` };
        if (!s.watching && now() - s.lastContactMs > STALE_AFTER_MS) {
          return { ready: false, message: `${s.resource} watch disconnected for ${Math.round((now() - s.lastContactMs) / 1000)} s` };
        }
      }
      const a = access?.last();
      // Only a definite refusal: an API server that cannot be asked is an outage, covered above.
      if (a && !a.ok && a.denied) return { ready: false, message: a.message };
      return { ready: true };
    },
  };
}

/**
 * Starts the proxy for a validated config: loads cluster access, starts the
 * Deployment cache (it syncs in the background; until then reads answer 503),
 * and listens on both addresses.
 * @throws ListenError when an address cannot be bound (in use, not local, unresolvable).
 */
export async function startProxy(config: Config, logger: Logger, reflectorOptions: ReflectorOptions = {}): Promise<RunningProxy> {
  const loaded = config.kube;
  logger.info({ source: loaded.source, server: loaded.server }, 'cluster access configured');
  for (const w of loaded.warnings) logger.warn(w);
  // The one registry of the process; each layer gets only its recorders (ARCHITECTURE.md).
  const metrics = config.metrics ? createMetrics({ version: VERSION, nodeVersion: process.version }) : disabledMetrics();
  const client = await KubeClient.create(loaded.kc, { impersonate: loaded.impersonate, upstream: metrics.upstream });
  const deployments = new Reflector(client, DEPLOYMENTS, { logger, recorder: metrics.reflector, ...reflectorOptions });
  metrics.observeCache(deployments);
  const autoscalers = new Reflector(client, HORIZONTAL_POD_AUTOSCALERS, { logger, recorder: metrics.reflector, ...reflectorOptions });
  metrics.observeCache(autoscalers);
  const access = new AccessCheck(client, { logger });
  let shuttingDown = false;
  const readiness = cacheReadiness([deployments, autoscalers], () => shuttingDown, undefined, access);
  const replicas = new KubeReplicaService(client, deployments, { logger, access, recorder: metrics.writes, consistencyWaitMs: config.consistencyWaitMs });
  const changes = new ChangeStream({
    get: (ns, name) => deployments.get(ns, name), list: (ns) => deployments.list(ns), hasSynced: () => deployments.hasSynced(),
    subscribe: (l) => deployments.subscribe(l), resourceVersion: () => deployments.status().resourceVersion,
  }, undefined, (watchers, ms, cpuMs) => logger.debug({ watchers, fanoutMs: Math.round(ms * 10) / 10, fanoutCpuMs: Math.round(cpuMs * 10) / 10 }, 'change sent to watchers'));
  const lists = new CachedDeploymentLists(deployments, deploymentReadThrough(client), { consistencyWaitMs: config.consistencyWaitMs, logger });
  const tls = serverTlsOptions(config.tlsCert, config.tlsKey, config.clientCa);
  const trust = new TrustedCas(config.clientCa);
  const refusals = new RefusalLog(logger, { onRefusal: (r) => recordRefusal(metrics.tls, r.code, r.reason) });
  const apiHealth = cachedApiHealth(proxyHealth(apiServerReadyz(client, undefined, logger), access));
  const authorizer = createAuthorizer(config, client, logger, metrics.authz);
  const audit = openAuditLog({
    recorder: metrics.audit,
    path: config.auditLogPath, maxSizeMb: config.auditLogMaxSizeMb, maxBackups: config.auditLogMaxBackups,
    onError: (err) => logger.error({ err, path: config.auditLogPath }, 'audit log file failed; audit events now go to stdout'),
  });
  const api = buildServer({
    lists, replicas, apiHealth, readiness, logger, recorders: metrics, authorizer, audit,
    scale: { deployments, autoscalers, guardrails: new GuardrailPolicy(config.maxReplicas, logger), logger },
    watch: { stream: changes, deployments, reauthorizeEveryMs: reauthorizeEveryMs(config.authorizationCacheAllowedTtlMs) },
  }, {
    tls, trust, refusals,
    limits: { requestTimeoutMs: config.requestTimeoutSeconds * 1000 },
    connections: {
      handshakeTimeoutMs: config.tlsHandshakeTimeoutSeconds * 1000,
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      maxConnectionAgeMs: config.maxConnectionAgeSeconds * 1000,
    },
    rateLimits: config.rateLimits,
  });
  const health = buildHealthServer({ readiness, logger, metrics: metrics.endpoint });
  // Bind both before reporting, so two unusable addresses are named in one run.
  const bound = await Promise.allSettled([
    listen(api, config.listen, '--listen', 'https'),
    listen(health, config.healthListen, '--health-listen', 'http'),
  ]);
  const failed = bound.filter((b): b is PromiseRejectedResult => b.status === 'rejected').map((b) => (b.reason as Error).message);
  if (failed.length > 0) {
    await Promise.all([api.close(), health.close()]);
    await audit.close();
    client.close();
    throw new ListenError(failed.join('\n  '));
  }
  const [apiUrl, healthUrl] = bound.map((b) => (b as PromiseFulfilledResult<string>).value);
  deployments.start();
  access.start();
  autoscalers.start();
  const stopReload = watchServerCertificate(api, {
    certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, caFile: config.clientCaFile,
    cert: config.tlsCert, key: config.tlsKey, ca: config.clientCa,
  }, logger, (ca) => trust.update(ca));
  logger.info({ api: apiUrl, health: healthUrl }, 'listening');

  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): Promise<void> => (stopping ??= (async () => {
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: /readyz now fails');
    if (config.shutdownDelaySeconds > 0) await new Promise((r) => setTimeout(r, config.shutdownDelaySeconds * 1000));
    stopReload();
    changes.close(); // ends every watch stream, so draining does not wait for them
    const drained = Promise.all([api.close(), health.close()]);
    const bound = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), config.shutdownTimeoutSeconds * 1000).unref());
    if ((await Promise.race([drained, bound])) === 'timeout') {
      logger.warn({ timeoutSeconds: config.shutdownTimeoutSeconds }, 'in-flight requests did not finish in time; closing anyway');
      api.server.closeAllConnections();
    }
    access.stop();
    await Promise.all([deployments.stop(), autoscalers.stop()]);
    await audit.close();
    client.close();
    refusals.flush();
    logger.info({ conflictsRetried: replicas.conflicts, tlsClientsRefused: refusals.counts() }, 'stopped');
  })());
  return { apiUrl, healthUrl, shutdown };
}

/** `--authorization`: SubjectAccessReviews behind the decision cache, or (warned about) no authorization at all. */
function createAuthorizer(config: Config, client: KubeClient, logger: Logger, recorder: AuthzRecorder): Authorizer {
  if (config.authorization === 'none') {
    logger.warn('--authorization=none: every client whose certificate chains to --client-ca may list and scale every Deployment in every namespace');
    return ALLOW_ALL;
  }
  logger.info({ allowedTtlMs: config.authorizationCacheAllowedTtlMs, deniedTtlMs: config.authorizationCacheDeniedTtlMs }, 'authorization: SubjectAccessReview (RBAC)');
  return new CachingAuthorizer(new SubjectAccessReviewAuthorizer(client), {
    allowedTtlMs: config.authorizationCacheAllowedTtlMs, deniedTtlMs: config.authorizationCacheDeniedTtlMs, recorder,
  });
}

/** Raised when an address cannot be bound (in use, not local, unresolvable): a configuration error naming its flag. */
export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

async function listen(app: FastifyInstance, addr: { host: string; port: number }, flag: string, scheme: string): Promise<string> {
  try {
    await app.listen({ host: addr.host, port: addr.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const why: Record<string, string> = { EADDRINUSE: 'address already in use', EADDRNOTAVAIL: 'not an address of this machine', ENOTFOUND: 'host name does not resolve', EACCES: 'permission denied (ports below 1024 need privileges)' };
    throw new ListenError(`${flag}: cannot listen on ${addr.host}:${addr.port}: ${why[code] ?? code}`);
  }
  const a = app.server.address();
  const port = typeof a === 'object' && a ? a.port : addr.port;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `${scheme}://${host}:${port}`;
}
