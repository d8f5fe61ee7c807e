/**
 * Certificate generation for k8s-api-proxy: `make generate-certs` and the tests' odd
 * certificates (another CA, expired, serverAuth-only) come from the same code.
 * ECDSA P-256 keys, SHA-256 signatures, via @peculiar/x509 on Node's WebCrypto.
 *
 * CLI: `tsx hack/certs.ts [DIR]` writes ca, server and client pairs to DIR (default
 * `certs/`), leaving existing files alone unless FORCE=1.
 * `tsx hack/certs.ts --client NAME [DIR]` issues one more client certificate from DIR's
 * existing CA into DIR/NAME.{crt,key} (CN = CLIENT_CN or NAME, O = CLIENT_GROUPS).
 * Environment: EXTRA_SANS (comma-separated DNS names or IPs), CLIENT_CN (default
 * `client`), CLIENT_GROUPS (comma-separated subject O values, the client's Kubernetes
 * groups; default `k8s-api-proxy-demo`, empty for none), CERT_DAYS (default 365).
 */
import { webcrypto, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** The server SANs the README and the Helm chart rely on (Service names in namespace k8s-api-proxy). */
export const DEFAULT_SERVER_SANS = [
  'localhost', '127.0.0.1', '::1',
  'k8s-api-proxy', 'k8s-api-proxy.k8s-api-proxy.svc', 'k8s-api-proxy.k8s-api-proxy.svc.cluster.local',
];

/**
 * The demo client's group (subject O): `make cluster-up` binds it to the
 * scaler ClusterRole (k8s-api-proxy-k8s-api-proxy-scaler), so the README's curl commands work on the demo cluster.
 */
export const DEMO_CLIENT_GROUP = 'k8s-api-proxy-demo';

/** A certificate and its private key, both PEM. */
export interface IssuedCert {
  certPem: string;
  keyPem: string;
  /** Kept to sign further certificates when this is a CA. */
  keys: webcrypto.CryptoKeyPair;
  cert: x509.X509Certificate;
}

/** Validity window; defaults: from one minute ago for `days` (365). */
export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
}

async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function window(v: Validity): { notBefore: Date; notAfter: Date } {
  const notBefore = v.notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore, notAfter: v.notAfter ?? new Date(notBefore.getTime() + (v.days ?? 365) * DAY_MS) };
}

const serial = (): string => `01${randomBytes(15).toString('hex')}`;

/** A self-signed CA (basicConstraints CA:TRUE critical, keyCertSign + cRLSign); `pathLength` 0: it signs leaves only. */
export async function createCa(commonName = 'k8s-api-proxy CA', validity: Validity = { days: 3650 }, pathLength = 0): Promise<IssuedCert> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: [{ CN: [commonName] }], ...window(validity), keys, signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, pathLength, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys), keys, cert };
}

/** What a leaf certificate is for. */
export interface LeafOptions extends Validity {
  commonName: string;
  /** Subject O values after the CN (a client's Kubernetes groups). */
  organizations?: string[];
  /** Extended key usages; `server` → serverAuth, `client` → clientAuth. */
  usages: Array<'server' | 'client'>;
  /** DNS names and IP addresses (IPv4 or IPv6). */
  sans?: string[];
  /** Tests only: a whole subject instead of `CN=commonName` (e.g. no CN, two CNs). */
  subject?: Array<Record<string, string[]>>;
  /** Tests only: mark the leaf as a CA (basicConstraints CA:TRUE). */
  ca?: boolean;
}

/** A leaf signed by `ca`: digitalSignature only (right for EC keys), the given EKUs and SANs. */
export async function issueCert(ca: IssuedCert, opts: LeafOptions): Promise<IssuedCert> {
  const keys = await newKeys();
  const eku = opts.usages.map((u) => (u === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth));
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (opts.ca ? x509.KeyUsageFlags.keyCertSign : 0), true),
    new x509.ExtendedKeyUsageExtension(eku),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (opts.sans?.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(opts.sans.map((s) => ({ type: isIP(s) ? 'ip' as const : 'dns' as const, value: s }))));
  }
  const cert = await x509.X509CertificateGenerator.create({
    // A JSON name, not a "CN=..." string, so commas or '=' in the CN are kept literally.
    serialNumber: serial(), subject: opts.subject ?? [{ CN: [opts.commonName] }, ...(opts.organizations ?? []).map((o) => ({ O: [o] }))], issuer: ca.cert.subject, ...window(opts),
    publicKey: keys.publicKey, signingKey: ca.keys.privateKey, signingAlgorithm: ALG, extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys), keys, cert };
}

/** RFC 1123 host name (optionally a leading `*.` wildcard), as accepted in a dNSName SAN. */
const DNS_NAME = /^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/**
 * Checks the CLI's inputs; every problem is returned, none thrown.
 * Days: a whole number from 1 to 3650. SANs: IP addresses or DNS names. CN: 1-64 characters.
 */
export function validateCertInputs(days: string | undefined, sans: string[], cn: string | undefined, groups: string[] = []): string[] {
  const errors: string[] = [];
  if (days !== undefined && (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > 3650)) errors.push(`CERT_DAYS: "${days}" is not a whole number of days from 1 to 3650`);
  for (const san of sans) {
    // An IP SAN must be a plain address (no IPv6 zone); a DNS SAN at most 253 characters
    // and not ending in an all-numeric label (which would be an IP-like name).
    const ok = isIP(san) ? !san.includes('%') : san.length <= 253 && DNS_NAME.test(san) && !/(^|\.)(\d+|0x[0-9a-f]+)$/i.test(san);
    if (!ok) errors.push(`EXTRA_SANS: "${san}" is neither an IP address nor a DNS name`);
  }
  // The proxy refuses the same names (src/auth/client-identity.ts): no control or format characters, no comma.
  if (cn !== undefined && (cn.trim().length < 1 || cn.length > 64 || /[\p{Cc}\p{Cf}\p{Zl}\p{Zp},]/u.test(cn))) {
    errors.push('CLIENT_CN: must be 1 to 64 printable characters without commas, not blank (RFC 5280 ub-common-name)');
  }
  for (const g of groups) {
    if (g.length > 64 || [...g].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) {
      errors.push(`CLIENT_GROUPS: "${g}" must be 1 to 64 printable characters (RFC 5280 ub-organization-name)`);
    }
  }
  return errors;
}

/** Options of {@link generateCertSet}. */
export interface CertSetOptions {
  dir: string;
  force?: boolean;
  extraSans?: string[];
  clientCommonName?: string;
  /** Subject O values of the client certificate (default: [{@link DEMO_CLIENT_GROUP}]). */
  clientGroups?: string[];
  days?: number;
}

/**
 * Writes `ca.crt/key`, `server.crt/key`, `client.crt/key` into `dir` (keys mode 0600).
 * @returns the files written, or [] when all exist and `force` is not set.
 * @throws Error when only some of the files exist (ambiguous; use force).
 */
export async function generateCertSet(opts: CertSetOptions): Promise<string[]> {
  const names = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'client.crt', 'client.key'];
  const present = names.filter((n) => existsSync(join(opts.dir, n)));
  if (!opts.force && present.length === names.length) return [];
  if (!opts.force && present.length > 0) {
    throw new Error(`${opts.dir} holds only ${present.join(', ')}; run with FORCE=1 to replace the whole set`);
  }
  mkdirSync(opts.dir, { recursive: true });
  const ca = await createCa();
  const server = await issueCert(ca, {
    commonName: 'k8s-api-proxy', usages: ['server'], days: opts.days,
    sans: [...new Set([...DEFAULT_SERVER_SANS, ...(opts.extraSans ?? [])])],
  });
  const client = await issueCert(ca, { commonName: opts.clientCommonName ?? 'client', organizations: opts.clientGroups ?? [DEMO_CLIENT_GROUP], usages: ['client'], days: opts.days });
  const files: Array<[string, string, number]> = [
    ['ca.crt', ca.certPem, 0o644], ['ca.key', ca.keyPem, 0o600],
    ['server.crt', server.certPem, 0o644], ['server.key', server.keyPem, 0o600],
    ['client.crt', client.certPem, 0o644], ['client.key', client.keyPem, 0o600],
  ];
  for (const [name, pem, mode] of files) {
    writeFileSync(join(opts.dir, name), pem, { mode });
    chmodSync(join(opts.dir, name), mode); // writeFileSync's mode applies only to new files
  }
  return files.map(([n]) => join(opts.dir, n));
}

/** Loads a CA written by {@link generateCertSet} (`ca.crt`, `ca.key` in `dir`) so it can sign more leaves. */
export async function loadCa(dir: string): Promise<IssuedCert> {
  const certPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  const cert = new x509.X509Certificate(certPem);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decode(keyPem)[0], ALG, true, ['sign']);
  const publicKey = await cert.publicKey.export(ALG, ['verify']);
  return { certPem, keyPem, cert, keys: { privateKey, publicKey } as webcrypto.CryptoKeyPair };
}

/**
 * Issues a client certificate from `dir`'s CA into `dir/<name>.crt` and `.key` (key 0600).
 * @returns the two paths.
 * @throws Error when the CA files are missing or `name` is not a plain file name.
 */
export async function issueClientFromCa(dir: string, name: string, commonName: string, groups: string[], days?: number): Promise<string[]> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name) || ['ca', 'server', 'client'].includes(name)) throw new Error(`"${name}" is not a new file name (letters, digits, . _ -)`);
  const client = await issueCert(await loadCa(dir), { commonName, organizations: groups, usages: ['client'], days });
  const files: Array<[string, string, number]> = [[`${name}.crt`, client.certPem, 0o644], [`${name}.key`, client.keyPem, 0o600]];
  for (const [file, pem, mode] of files) {
    writeFileSync(join(dir, file), pem, { mode });
    chmodSync(join(dir, file), mode);
  }
  return files.map(([f]) => join(dir, f));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href && process.argv[2] === '--client') {
  const name = process.argv[3] ?? '';
  const dir = process.argv[4] ?? 'certs';
  const groups = (process.env.CLIENT_GROUPS ?? '').split(',').map((g) => g.trim()).filter(Boolean);
  const cn = process.env.CLIENT_CN || name;
  const problems = validateCertInputs(process.env.CERT_DAYS || undefined, [], cn, groups);
  if (problems.length > 0) {
    console.error(`client-cert: invalid input:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    process.exit(2);
  }
  issueClientFromCa(dir, name, cn, groups, process.env.CERT_DAYS ? Number(process.env.CERT_DAYS) : undefined).then(
    (written) => console.log(`wrote ${written.join(' ')} (CN=${cn}${groups.map((g) => `, O=${g}`).join('')})`),
    (err: Error) => { console.error(`client-cert: ${err.message}`); process.exit(1); },
  );
} else if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2] ?? 'certs';
  const extraSans = (process.env.EXTRA_SANS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const clientGroups = (process.env.CLIENT_GROUPS ?? DEMO_CLIENT_GROUP).split(',').map((s) => s.trim()).filter(Boolean);
  const problems = validateCertInputs(process.env.CERT_DAYS || undefined, extraSans, process.env.CLIENT_CN || undefined, clientGroups);
  if (problems.length > 0) {
    console.error(`generate-certs: invalid input:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    process.exit(2);
  }
  const days = process.env.CERT_DAYS ? Number(process.env.CERT_DAYS) : undefined;
  generateCertSet({
    dir, force: process.env.FORCE === '1', days, extraSans,
    clientCommonName: process.env.CLIENT_CN || undefined, clientGroups,
  }).then((written) => {
    if (written.length === 0) console.log(`${dir}/ already holds a certificate set; FORCE=1 replaces it`);
    else console.log(`wrote ${written.join(' ')}`);
  }, (err: Error) => {
    console.error(`generate-certs: ${err.message}`);
    process.exit(1);
  });
}
