import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCert, DEFAULT_SERVER_SANS, DEMO_CLIENT_GROUP, type IssuedCert } from '../../hack/certs.js';

/** A directory of certificates for one test file, made by the same generator as `make generate-certs`. */
export interface CertFixture {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  ca: string;
  /** CN ci-pipeline, O k8s-api-proxy-demo: the demo group, which cluster.sh binds to the scaler ClusterRole cluster-wide. */
  client: { cert: string; key: string };
  /** Valid client certificate from an unrelated CA. */
  otherCaClient: { cert: string; key: string };
  /** Client certificate from the right CA whose validity ended yesterday. */
  expiredClient: { cert: string; key: string };
  /** The server certificate (serverAuth only) presented as a client certificate. */
  serverAsClient: { cert: string; key: string };
  /** Right CA and usage, but unfit identities: no CN, two CNs, a CA certificate. */
  noCnClient: { cert: string; key: string };
  twoCnClient: { cert: string; key: string };
  caAsClient: { cert: string; key: string };
  /** Right CA and usage, deceptive CNs: a bidi override, a C1 control, one CN reading as two. */
  deceptiveClients: Array<[string, { cert: string; key: string }]>;
  /** cert-manager's layout: a root (kept offline) and an issuing intermediate. */
  intermediate: {
    /** Files holding only the intermediate, and root + intermediate. */
    onlyFile: string;
    withRootFile: string;
    /** A client of the intermediate; `cert` holds leaf + intermediate. */
    client: { cert: string; key: string };
  };
  /** A client certificate valid for `seconds` more (for expiry during a connection). */
  issueShortLived(seconds: number, commonName?: string): Promise<{ cert: string; key: string }>;
  /** The certificate of the CA behind `otherCaClient` (PEM). */
  otherCa: string;
  /** A valid client certificate of the fixture CA with this CN and one O per group (its Kubernetes groups). */
  issueClient(commonName: string, groups?: string[]): Promise<{ cert: string; key: string }>;
  /** A fresh server pair from the same CA (for reload tests). */
  issueServer(): Promise<IssuedCert>;
}

/** Generates a fresh CA, server and client set plus the odd certificates, in a temp dir. */
export async function makeCertFixture(): Promise<CertFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'k8s-api-proxy-certs-'));
  const ca = await createCa('test CA');
  const issueServer = (): Promise<IssuedCert> => issueCert(ca, { commonName: 'k8s-api-proxy', usages: ['server'], sans: DEFAULT_SERVER_SANS });
  const server = await issueServer();
  const client = await issueCert(ca, { commonName: 'ci-pipeline', organizations: [DEMO_CLIENT_GROUP], usages: ['client'] });
  const other = await createCa('another CA');
  const otherClient = await issueCert(other, { commonName: 'intruder', usages: ['client'] });
  const day = 86_400_000;
  const expired = await issueCert(ca, { commonName: 'expired', usages: ['client'], notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) });
  const noCn = await issueCert(ca, { commonName: '', subject: [{ O: ['no-cn'] }], usages: ['client'] });
  const twoCn = await issueCert(ca, { commonName: '', subject: [{ CN: ['alice'] }, { CN: ['admin'] }], usages: ['client'] });
  const caLeaf = await issueCert(ca, { commonName: 'sub-ca', usages: ['client'], ca: true });
  const pair = (c: IssuedCert): { cert: string; key: string } => ({ cert: c.certPem, key: c.keyPem });
  const deceptiveClients: Array<[string, { cert: string; key: string }]> = [];
  for (const [label, cn] of [['a CN with a right-to-left override (U+202E)', 'admin\u202Eexe.nip'], ['a CN with a C1 control (U+0085)', 'alice\u0085root'], ['a single CN "alice,bob"', 'alice,bob']]) {
    deceptiveClients.push([label, pair(await issueCert(ca, { commonName: cn, usages: ['client'] }))]);
  }
  const root = await createCa('offline root', { days: 3650 }, 1);
  const inter = await issueCert(root, { commonName: 'issuing intermediate', usages: ['client'], ca: true, days: 3650 });
  const interClient = await issueCert(inter, { commonName: 'via-intermediate', usages: ['client'] });
  const write = (name: string, pem: string): string => { const p = join(dir, name); writeFileSync(p, pem, { mode: 0o600 }); return p; };
  return {
    dir,
    caFile: write('ca.crt', ca.certPem),
    serverCertFile: write('server.crt', server.certPem),
    serverKeyFile: write('server.key', server.keyPem),
    ca: ca.certPem,
    client: { cert: client.certPem, key: client.keyPem },
    otherCaClient: { cert: otherClient.certPem, key: otherClient.keyPem },
    expiredClient: { cert: expired.certPem, key: expired.keyPem },
    serverAsClient: { cert: server.certPem, key: server.keyPem },
    noCnClient: { cert: noCn.certPem, key: noCn.keyPem },
    twoCnClient: { cert: twoCn.certPem, key: twoCn.keyPem },
    caAsClient: { cert: caLeaf.certPem, key: caLeaf.keyPem },
    deceptiveClients,
    otherCa: other.certPem,
    intermediate: {
      onlyFile: write('intermediate-only.crt', inter.certPem),
      withRootFile: write('root-and-intermediate.crt', `${inter.certPem}\n${root.certPem}\n`),
      client: { cert: `${interClient.certPem}\n${inter.certPem}\n`, key: interClient.keyPem },
    },
    issueShortLived: async (seconds, commonName = 'short-lived') => pair(await issueCert(ca, {
      commonName, usages: ['client'], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + seconds * 1000),
    })),
    issueClient: async (commonName, groups = []) => pair(await issueCert(ca, { commonName, organizations: groups, usages: ['client'] })),
    issueServer,
  };
}
