import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { KubeConfigError, loadKubeConfig, type LoadedKubeConfig } from './kube/kubeconfig.js';
import { caBundleForOpenSsl, clientCaProblems } from './tls/trust.js';

/** A `host:port` pair to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** The proxy's validated configuration. File contents are loaded here, once. */
export interface Config {
  kubeconfig?: string;
  context?: string;
  serviceAccountDir: string;
  /** Cluster access resolved from --kubeconfig/$KUBECONFIG/~/.kube/config/in-cluster. */
  kube: LoadedKubeConfig;
  listen: ListenAddress;
  healthListen: ListenAddress;
  tlsCertFile: string;
  tlsKeyFile: string;
  clientCaFile: string;
  tlsCert: Buffer;
  tlsKey: Buffer;
  clientCa: Buffer;
  logLevel: string;
  shutdownTimeoutSeconds: number;
  shutdownDelaySeconds: number;
  requestTimeoutSeconds: number;
  tlsHandshakeTimeoutSeconds: number;
  /** 0: no cap. */
  maxConnections: number;
  /** 0: no cap. */
  maxConnectionsPerIp: number;
  /** 0: no bound. */
  maxConnectionAgeSeconds: number;
  /** Per client; rps 0 switches the limit off. */
  rateLimits: { read: { rps: number; burst: number }; write: { rps: number; burst: number } };
  /** Serve `/metrics` and record metrics (`--metrics=false` turns both off, e.g. to measure their cost). */
  metrics: boolean;
  /** `rbac`: every Deployment request is authorized by SubjectAccessReview; `none`: every authenticated client may do everything. */
  authorization: AuthorizationMode;
  authorizationCacheAllowedTtlMs: number;
  authorizationCacheDeniedTtlMs: number;
  /** `-` is stdout. */
  auditLogPath: string;
  auditLogMaxSizeMb: number;
  /** Rotated files kept; 0 keeps all. */
  auditLogMaxBackups: number;
  /** `--max-replicas`: a PUT above it is 422; 0 = no cap. */
  maxReplicas: number;
  /** Bound on waiting for the cache to reach a read's `minResourceVersion` before reading through, milliseconds. */
  consistencyWaitMs: number;
}

/** `--authorization` values. */
export const AUTHORIZATION_MODES = ['rbac', 'none'] as const;
/** How Deployment requests are authorized. */
export type AuthorizationMode = typeof AUTHORIZATION_MODES[number];

/** One command-line flag: its environment twin, default and help line. */
export interface FlagSpec {
  flag: string;
  env: string;
  value: string;
  default?: string;
  help: string;
}

/** Every flag, in `--help` order. The README's flag table is this table. */
export const FLAGS: readonly FlagSpec[] = [
  { flag: 'kubeconfig', env: 'K8S_API_PROXY_KUBECONFIG', value: 'PATH', help: 'kubeconfig file; without it: $KUBECONFIG, then ~/.kube/config, then in-cluster config' },
  { flag: 'context', env: 'K8S_API_PROXY_CONTEXT', value: 'NAME', help: 'kubeconfig context to use (default: the current context)' },
  { flag: 'service-account-dir', env: 'K8S_API_PROXY_SERVICE_ACCOUNT_DIR', value: 'PATH', default: '/var/run/secrets/kubernetes.io/serviceaccount', help: 'in-cluster credentials (token, ca.crt), used when no kubeconfig applies' },
  { flag: 'listen', env: 'K8S_API_PROXY_LISTEN', value: 'HOST:PORT', default: '0.0.0.0:8443', help: 'HTTPS (mTLS) API address' },
  { flag: 'tls-cert', env: 'K8S_API_PROXY_TLS_CERT', value: 'PATH', default: 'certs/server.crt', help: 'server certificate (PEM, may include intermediates)' },
  { flag: 'tls-key', env: 'K8S_API_PROXY_TLS_KEY', value: 'PATH', default: 'certs/server.key', help: 'server private key (PEM)' },
  { flag: 'client-ca', env: 'K8S_API_PROXY_CLIENT_CA', value: 'PATH', default: 'certs/ca.crt', help: 'CA bundle that client certificates must chain to (PEM)' },
  { flag: 'health-listen', env: 'K8S_API_PROXY_HEALTH_LISTEN', value: 'HOST:PORT', default: '0.0.0.0:8081', help: 'plain-HTTP address serving only /livez, /readyz and /metrics, for kubelet probes and Prometheus' },
  { flag: 'log-level', env: 'K8S_API_PROXY_LOG_LEVEL', value: 'LEVEL', default: 'info', help: 'one of fatal, error, warn, info, debug, trace, silent' },
  { flag: 'request-timeout-seconds', env: 'K8S_API_PROXY_REQUEST_TIMEOUT_SECONDS', value: 'N', default: '30', help: 'a client must send its whole request (headers and body) within N seconds, else 408' },
  { flag: 'tls-handshake-timeout-seconds', env: 'K8S_API_PROXY_TLS_HANDSHAKE_TIMEOUT_SECONDS', value: 'N', default: '10', help: 'a connection that has not finished its TLS handshake within N seconds is closed' },
  { flag: 'max-connections', env: 'K8S_API_PROXY_MAX_CONNECTIONS', value: 'N', default: '1000', help: 'open connections on the API listener; at the cap a new one replaces the oldest still in its TLS handshake, or is closed at once (0: no cap)' },
  { flag: 'max-connections-per-ip', env: 'K8S_API_PROXY_MAX_CONNECTIONS_PER_IP', value: 'N', default: '200', help: 'open connections from one source address; past it new ones from there are closed at once (0: no cap)' },
  { flag: 'max-connection-age-seconds', env: 'K8S_API_PROXY_MAX_CONNECTION_AGE_SECONDS', value: 'N', default: '600', help: 'a connection older than N seconds is closed after its next response (0: no bound)' },
  { flag: 'rate-limit-read-rps', env: 'K8S_API_PROXY_RATE_LIMIT_READ_RPS', value: 'N', default: '100', help: 'reads (GET, HEAD) per second per client identity, else 429 (0: no limit)' },
  { flag: 'rate-limit-read-burst', env: 'K8S_API_PROXY_RATE_LIMIT_READ_BURST', value: 'N', default: '200', help: 'reads a client may send at once' },
  { flag: 'rate-limit-write-rps', env: 'K8S_API_PROXY_RATE_LIMIT_WRITE_RPS', value: 'N', default: '5', help: 'writes (PUT and other methods) per second per client identity, else 429 (0: no limit)' },
  { flag: 'rate-limit-write-burst', env: 'K8S_API_PROXY_RATE_LIMIT_WRITE_BURST', value: 'N', default: '20', help: 'writes a client may send at once' },
  { flag: 'shutdown-delay-seconds', env: 'K8S_API_PROXY_SHUTDOWN_DELAY_SECONDS', value: 'N', default: '0', help: 'after SIGTERM, fail /readyz for N seconds before closing listeners (lets endpoints drop the pod)' },
  { flag: 'max-replicas', env: 'K8S_API_PROXY_MAX_REPLICAS', value: 'N', default: '1000', help: 'refuse (422) a PUT of more than N replicas, whatever the Deployment\'s annotations say; 0 = no cap' },
  { flag: 'consistency-wait-ms', env: 'K8S_API_PROXY_CONSISTENCY_WAIT_MS', value: 'N', default: '1000', help: 'a read with minResourceVersion newer than the cache waits up to N ms for the watch, then reads through from the API server' },
  { flag: 'shutdown-timeout-seconds', env: 'K8S_API_PROXY_SHUTDOWN_TIMEOUT_SECONDS', value: 'N', default: '20', help: 'bound on waiting for in-flight requests after SIGTERM' },
  { flag: 'metrics', env: 'K8S_API_PROXY_METRICS', value: 'BOOL', default: 'true', help: 'record Prometheus metrics and serve them at /metrics on --health-listen; false turns both off' },
  { flag: 'authorization', env: 'K8S_API_PROXY_AUTHORIZATION', value: 'MODE', default: 'rbac', help: 'rbac: each request is authorized by a SubjectAccessReview for the client\'s user and groups; none: every authenticated client may do everything (logs a warning)' },
  { flag: 'authorization-cache-allowed-ttl', env: 'K8S_API_PROXY_AUTHORIZATION_CACHE_ALLOWED_TTL', value: 'DURATION', default: '10s', help: 'how long an allow decision is reused (e.g. 10s, 500ms, 1m; 0 disables), at most 1h' },
  { flag: 'authorization-cache-denied-ttl', env: 'K8S_API_PROXY_AUTHORIZATION_CACHE_DENIED_TTL', value: 'DURATION', default: '5s', help: 'how long a deny decision is reused (0 disables), at most 1h' },
  { flag: 'audit-log-path', env: 'K8S_API_PROXY_AUDIT_LOG_PATH', value: 'PATH', default: '-', help: 'where audit events (audit.k8s.io/v1 Event JSON lines) go; - is stdout' },
  { flag: 'audit-log-maxsize', env: 'K8S_API_PROXY_AUDIT_LOG_MAXSIZE', value: 'MB', default: '100', help: 'rotate the audit log file when it reaches this many megabytes (decimals allowed)' },
  { flag: 'audit-log-maxbackup', env: 'K8S_API_PROXY_AUDIT_LOG_MAXBACKUP', value: 'N', default: '10', help: 'rotated audit log files to keep (0 keeps all)' },
];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The outcome of {@link parseArgs}: a command to run or every problem found. */
export type ParseResult =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'run'; config: Config }
  | { kind: 'invalid'; errors: string[] };

/**
 * Parses flags (`--flag value` or `--flag=value`), falling back to each flag's
 * environment twin, then its default; then validates everything, reading the
 * certificate files and resolving cluster access, and reports all errors at once, each
 * naming its flag. `env` and `home` are injectable for tests.
 */
export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, home?: string): ParseResult {
  const errors: string[] = [];
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (arg === '--version') return { kind: 'version' };
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    const spec = m ? FLAGS.find((f) => f.flag === m[1]) : undefined;
    if (!m || !spec) {
      errors.push(`${arg}: unknown argument (see --help)`);
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) {
        errors.push(`--${spec.flag}: needs a value (${spec.value})`);
        continue;
      }
      i++;
    }
    given.set(spec.flag, value);
  }
  const get = (flag: string): string | undefined => {
    const spec = FLAGS.find((f) => f.flag === flag)!;
    const v = given.get(flag) ?? env[spec.env];
    return v === undefined || v === '' ? spec.default : v;
  };

  const listen = parseAddress('--listen', get('listen')!, errors);
  const healthListen = parseAddress('--health-listen', get('health-listen')!, errors);
  const tlsCertFile = get('tls-cert')!;
  const tlsKeyFile = get('tls-key')!;
  const clientCaFile = get('client-ca')!;
  const tlsCert = readFile('--tls-cert', tlsCertFile, errors);
  const tlsKey = readFile('--tls-key', tlsKeyFile, errors);
  const clientCa = readFile('--client-ca', clientCaFile, errors);
  checkKeyPair(tlsCert, tlsKey, errors);
  if (clientCa) checkCa(clientCa, errors);
  const logLevel = get('log-level')!;
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`--log-level: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  const shutdownTimeoutSeconds = parseSeconds('--shutdown-timeout-seconds', get('shutdown-timeout-seconds')!, errors);
  const shutdownDelaySeconds = parseSeconds('--shutdown-delay-seconds', get('shutdown-delay-seconds')!, errors);
  const requestTimeoutSeconds = parseSeconds('--request-timeout-seconds', get('request-timeout-seconds')!, errors);
  const metricsValue = get('metrics')!;
  if (metricsValue !== 'true' && metricsValue !== 'false') errors.push(`--metrics: "${metricsValue}" is not true or false`);
  const consistencyWaitMs = parseCount('--consistency-wait-ms', get('consistency-wait-ms')!, 0, 60_000, errors);
  if (requestTimeoutSeconds === 0 && errors.every((e) => !e.startsWith('--request-timeout-seconds'))) errors.push('--request-timeout-seconds: must be above 0');
  const tlsHandshakeTimeoutSeconds = parseSeconds('--tls-handshake-timeout-seconds', get('tls-handshake-timeout-seconds')!, errors);
  if (tlsHandshakeTimeoutSeconds === 0 && errors.every((e) => !e.startsWith('--tls-handshake-timeout-seconds'))) errors.push('--tls-handshake-timeout-seconds: must be above 0');
  const maxConnections = parseCount('--max-connections', get('max-connections')!, 0, 1_000_000, errors);
  const maxConnectionsPerIp = parseCount('--max-connections-per-ip', get('max-connections-per-ip')!, 0, 1_000_000, errors);
  const maxConnectionAgeSeconds = parseCount('--max-connection-age-seconds', get('max-connection-age-seconds')!, 0, 86_400, errors);
  const rate = (kind: 'read' | 'write') => ({
    rps: parseRate(`--rate-limit-${kind}-rps`, get(`rate-limit-${kind}-rps`)!, errors),
    burst: parseCount(`--rate-limit-${kind}-burst`, get(`rate-limit-${kind}-burst`)!, 1, 1_000_000, errors),
  });
  const rateLimits = { read: rate('read'), write: rate('write') };
  const maxReplicas = parseCount('--max-replicas', get('max-replicas')!, 0, 2_147_483_647, errors);
  if (listen && healthListen && listen.port === healthListen.port && listen.port !== 0 && listen.host === healthListen.host) {
    errors.push(`--health-listen: ${healthListen.host}:${healthListen.port} is the same address as --listen`);
  }
  const authorization = get('authorization')! as AuthorizationMode;
  if (!AUTHORIZATION_MODES.includes(authorization)) errors.push(`--authorization: "${authorization}" is not one of ${AUTHORIZATION_MODES.join(', ')}`);
  const authorizationCacheAllowedTtlMs = parseDuration('--authorization-cache-allowed-ttl', get('authorization-cache-allowed-ttl')!, errors);
  const authorizationCacheDeniedTtlMs = parseDuration('--authorization-cache-denied-ttl', get('authorization-cache-denied-ttl')!, errors);
  const auditLogPath = get('audit-log-path')!;
  if (auditLogPath !== '-') checkWritableFile('--audit-log-path', auditLogPath, errors);
  const auditLogMaxSizeMb = Number(get('audit-log-maxsize'));
  if (!/^\d+(\.\d+)?$/.test(get('audit-log-maxsize')!) || !(auditLogMaxSizeMb >= 0.001 && auditLogMaxSizeMb <= 1_048_576)) {
    errors.push(`--audit-log-maxsize: "${get('audit-log-maxsize')}" is not a number of megabytes between 0.001 and 1048576`);
  }
  const auditLogMaxBackups = Number(get('audit-log-maxbackup'));
  if (!/^\d{1,6}$/.test(get('audit-log-maxbackup')!)) errors.push(`--audit-log-maxbackup: "${get('audit-log-maxbackup')}" is not a whole number of files (0 keeps all)`);
  const kubeconfig = get('kubeconfig');
  const context = get('context');
  const serviceAccountDir = get('service-account-dir')!;
  let kube: LoadedKubeConfig | undefined;
  if (kubeconfig === undefined || readFile('--kubeconfig', kubeconfig, errors)) {
    try {
      kube = loadKubeConfig({ kubeconfig, context, serviceAccountDir, env, home });
    } catch (err) {
      if (!(err instanceof KubeConfigError)) throw err;
      errors.push(err.message);
    }
  }

  if (errors.length > 0 || !listen || !healthListen || !tlsCert || !tlsKey || !clientCa || !kube) return { kind: 'invalid', errors };
  return {
    kind: 'run',
    config: {
      kubeconfig, context, serviceAccountDir, kube, listen, healthListen, tlsCertFile, tlsKeyFile, clientCaFile,
      tlsCert, tlsKey, clientCa, logLevel, shutdownTimeoutSeconds, shutdownDelaySeconds, requestTimeoutSeconds,
      tlsHandshakeTimeoutSeconds, maxConnections, maxConnectionsPerIp, maxConnectionAgeSeconds, rateLimits, consistencyWaitMs,
      metrics: metricsValue === 'true',
      authorization, authorizationCacheAllowedTtlMs, authorizationCacheDeniedTtlMs, auditLogPath, auditLogMaxSizeMb, auditLogMaxBackups,
      maxReplicas,
    },
  };
}

/** Parses `HOST:PORT` or `[IPv6]:PORT`; port 0 means "any free port". */
export function parseAddress(flag: string, value: string, errors: string[]): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const host = m ? (m[1] ?? m[2]) : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    errors.push(`${flag}: "${value}" is not HOST:PORT (e.g. 0.0.0.0:8443, [::]:8443, localhost:8443)`);
    return undefined;
  }
  if (m[1] !== undefined && isIP(m[1]) !== 6) {
    errors.push(`${flag}: "${m[1]}" is not an IPv6 address`);
    return undefined;
  }
  if (host === '') {
    errors.push(`${flag}: "${value}" has no host; use 0.0.0.0 to listen on every interface`);
    return undefined;
  }
  return { host, port };
}

function parseSeconds(flag: string, value: string, errors: string[]): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(n) || n > 3600) {
    errors.push(`${flag}: "${value}" is not a number of seconds between 0 and 3600`);
    return 0;
  }
  return n;
}

function parseCount(flag: string, value: string, min: number, max: number, errors: string[]): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    errors.push(`${flag}: "${value}" is not a whole number between ${min} and ${max}`);
    return min;
  }
  return n;
}

function parseRate(flag: string, value: string, errors: string[]): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n > 1_000_000) {
    errors.push(`${flag}: "${value}" is not a number of requests per second between 0 and 1000000`);
    return 0;
  }
  return n;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration (`10s`, `500ms`, `1m`, `0`) into milliseconds, at most one hour. */
export function parseDuration(flag: string, value: string, errors: string[]): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2] ?? (Number(m[1]) === 0 ? 's' : '')] : NaN;
  if (!Number.isFinite(ms) || ms > 3_600_000) {
    errors.push(`${flag}: "${value}" is not a duration of at most 1h (e.g. 10s, 500ms, 1m; 0 disables)`);
    return 0;
  }
  return Math.round(ms);
}

function checkWritableFile(flag: string, path: string, errors: string[]): void {
  try {
    if (!statSync(dirname(path)).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' });
    accessSync(dirname(path), fsConstants.W_OK);
  } catch (err) {
    errors.push(`${flag}: cannot write in ${dirname(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readFile(flag: string, path: string, errors: string[]): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    errors.push(`${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}

function checkKeyPair(certPem: Buffer | undefined, keyPem: Buffer | undefined, errors: string[]): void {
  let cert: X509Certificate | undefined;
  let key: ReturnType<typeof createPrivateKey> | undefined;
  if (certPem) {
    try {
      cert = new X509Certificate(certPem);
      if (Date.parse(cert.validTo) < Date.now()) errors.push(`--tls-cert: expired on ${cert.validTo}`);
    } catch (err) {
      errors.push(`--tls-cert: not a PEM certificate (${(err as Error).message})`);
    }
  }
  if (keyPem) {
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      errors.push(`--tls-key: not a PEM private key (${(err as Error).message})`);
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) errors.push('--tls-key: does not match the public key of --tls-cert');
}

function checkCa(pem: Buffer, errors: string[]): void {
  for (const p of clientCaProblems(pem)) errors.push(`--client-ca: ${p}`);
  try {
    createSecureContext({ ca: caBundleForOpenSsl(pem) }); // what the listener will do; catches PEM damage the parser above tolerates
  } catch (err) {
    errors.push(`--client-ca: OpenSSL cannot load the bundle (${(err as Error).message})`);
  }
}

/** The `--help` text, generated from {@link FLAGS}. */
export function helpText(): string {
  const lines = [
    'k8s-api-proxy: an mTLS HTTPS API to list Deployments and read or set their replicas.',
    '',
    'Usage: api [flags]',
    '',
    'Flags (each also read from its environment variable; a flag wins):',
  ];
  for (const f of FLAGS) {
    lines.push(`  --${f.flag} ${f.value}`);
    lines.push(`      ${f.help}${f.default !== undefined ? ` (default ${f.default})` : ''} [$${f.env}]`);
  }
  lines.push('  --help', '      print this help', '  --version', '      print the version');
  lines.push('', 'Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration.');
  return lines.join('\n');
}
