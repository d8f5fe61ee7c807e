import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket, type ConnectionOptions } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { writeFileSync, renameSync, readFileSync } from 'node:fs';
import { X509Certificate, randomUUID } from 'node:crypto';
import { ensureCluster } from '../helpers/cluster.js';
import { makeCertFixture, type CertFixture } from '../helpers/certs.js';
import { startProxy, type ProxyProcess } from '../helpers/proxy-process.js';
import { call } from '../helpers/https.js';
import { waitFor } from '../helpers/wait.js';
import { createCa, issueCert } from '../../hack/certs.js';

/** Sends one GET over a raw TLS connection; resolves with the response text or the error. */
function rawGet(url: string, opts: ConnectionOptions, path = '/deployments'): Promise<{ text?: string; error?: string; socket?: TLSSocket }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const s = tlsConnect({ host: hostname, port: Number(port), servername: hostname, ...opts }, () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => { text += c; });
    s.on('error', (err) => resolve({ error: err.message, text }));
    s.on('end', () => resolve({ text, socket: s }));
    s.setTimeout(5_000, () => { s.destroy(); resolve({ error: 'timeout', text }); });
  });
}

describe('mutual TLS on the API listener', () => {
  let certs: CertFixture;
  let proxy: ProxyProcess;
  before(async () => {
    await ensureCluster();
    certs = await makeCertFixture();
    proxy = await startProxy({ certs });
  });
  after(async () => { await proxy?.stop(); });

  const reached = (path: string): boolean => proxy.logs.some((l) => l.msg === 'request' && l.path === path);

  it('serves a client whose certificate chains to --client-ca and carries clientAuth', async () => {
    const r = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client });
    assert.match(r.text ?? '', /^HTTP\/1\.1 200/);
  });

  const refused: Array<[string, (c: CertFixture) => ConnectionOptions]> = [
    ['no client certificate', (c) => ({ ca: c.ca })],
    ['a certificate from another CA', (c) => ({ ca: c.ca, ...c.otherCaClient })],
    ['an expired certificate', (c) => ({ ca: c.ca, ...c.expiredClient })],
    ['the server certificate presented as a client certificate (serverAuth only)', (c) => ({ ca: c.ca, ...c.serverAsClient })],
    ['a client certificate without a subject CN', (c) => ({ ca: c.ca, ...c.noCnClient })],
    ['a client certificate with two CNs (ambiguous identity)', (c) => ({ ca: c.ca, ...c.twoCnClient })],
    ['a CA certificate that also carries clientAuth', (c) => ({ ca: c.ca, ...c.caAsClient })],
    ...[0, 1, 2].map((i): [string, (c: CertFixture) => ConnectionOptions] => [`a deceptive CN (fixture #${i + 1}: bidi override, C1 control, "alice,bob")`, (c) => ({ ca: c.ca, ...c.deceptiveClients[i][1] })]),
  ];
  for (const [i, [label, opts]] of refused.entries()) {
    it(`refuses ${label} before any handler runs`, async () => {
      const path = `/refused-${i}`;
      const r = await rawGet(proxy.apiUrl, opts(certs), path);
      assert.doesNotMatch(r.text ?? '', /HTTP\/1\.1/, `no HTTP answer; got ${r.text}`);
      // Control: the same path with a good certificate is logged (as a 404), so the log would show it.
      await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client }, `${path}-control`);
      await waitFor('control request logged', () => reached(`${path}-control`));
      assert.equal(reached(path), false, 'no request reached a handler');
    });
  }

  it('never hands a refused client\'s bytes to the HTTP layer, even under repetition', async () => {
    const unfit = [certs.noCnClient, certs.twoCnClient, certs.caAsClient, certs.serverAsClient];
    for (let i = 0; i < 40; i++) {
      const r = await rawGet(proxy.apiUrl, { ca: certs.ca, ...unfit[i % unfit.length] }, `/probe-${i}`);
      assert.doesNotMatch(r.text ?? '', /HTTP\/1\.1/);
    }
    await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client }, '/probe-control');
    await waitFor('control logged', () => reached('/probe-control'));
    const leaked = proxy.logs.filter((l) => String(l.path ?? '').startsWith('/probe-') && l.path !== '/probe-control');
    assert.deepEqual(leaked, [], 'no request or aborted-request line for refused clients');
  });

  it('gives plain HTTP on the TLS port no API answer', async () => {
    const { port } = new URL(proxy.apiUrl);
    const text = await new Promise<string>((resolve) => {
      const s = netConnect(Number(port), '127.0.0.1', () => s.write('GET /deployments HTTP/1.1\r\nHost: x\r\n\r\n'));
      let t = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => { t += c; });
      s.on('close', () => resolve(t));
      s.on('error', () => resolve(t));
      s.setTimeout(3_000, () => s.destroy());
    });
    assert.doesNotMatch(text, /deployments|"name"|HTTP\/1\.1 200/);
  });

  it('refuses TLS below 1.2', async () => {
    const r = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    assert.ok(r.error, `expected a handshake failure, got ${r.text}`);
  });

  it('offers no CBC or SHA-1 cipher suites on TLS 1.2', async () => {
    const r = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256' });
    assert.ok(r.error, `expected no shared cipher, got ${r.text?.slice(0, 40)}`);
    const ok = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.match(ok.text ?? '', /200/);
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`does not resume ${version} sessions: every connection is fully verified`, async () => {
      const first = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client, maxVersion: version, minVersion: version });
      assert.match(first.text ?? '', /200/);
      const session = first.socket?.getSession();
      const second = await new Promise<boolean>((resolve, reject) => {
        const { port } = new URL(proxy.apiUrl);
        const s = tlsConnect({ host: 'localhost', port: Number(port), ca: certs.ca, ...certs.client, session, maxVersion: version, minVersion: version }, () => {
          resolve(s.isSessionReused());
          s.destroy();
        });
        s.on('error', reject);
      });
      assert.equal(second, false);
    });
  }

  it('takes the identity from the certificate, never from request headers (the log line of that very request)', async () => {
    // The response carries no request id, so the request is made unique by its path and
    // its own log line is awaited (lines arrive after the response).
    const path = `/whoami-${randomUUID()}`;
    const r = await call(`${proxy.apiUrl}${path}`, { tls: { ca: certs.ca, ...certs.client }, headers: { 'x-client-cn': 'admin', 'x-forwarded-client-cert': 'Subject="CN=admin"', 'x-remote-user': 'admin', 'impersonate-user': 'admin' } });
    assert.equal(r.status, 404);
    const line = await waitFor('the log line of this request', () => proxy.logs.find((l) => l.msg === 'request' && l.path === path)) as Record<string, unknown>;
    assert.equal(line.client, 'ci-pipeline');
    assert.ok(line.reqId);
  });

  it('hot-reloads a renewed server certificate for new connections', async () => {
    const fresh = await certs.issueServer();
    writeFileSync(`${certs.serverKeyFile}.new`, fresh.keyPem);
    writeFileSync(`${certs.serverCertFile}.new`, fresh.certPem);
    renameSync(`${certs.serverKeyFile}.new`, certs.serverKeyFile);
    renameSync(`${certs.serverCertFile}.new`, certs.serverCertFile);
    const want = new X509Certificate(fresh.certPem).fingerprint256;
    await waitFor('new certificate served', async () => {
      const r = await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client });
      return r.socket?.getPeerCertificate().fingerprint256 === want;
    }, 5_000, 200);
  });

  it('hot-reloads a new client CA bundle: a client of the added CA is served without a restart', async () => {
    const newCa = await createCa('rotated client CA');
    const newClient = await issueCert(newCa, { commonName: 'rotated-client', usages: ['client'] });
    const before = await rawGet(proxy.apiUrl, { ca: certs.ca, cert: newClient.certPem, key: newClient.keyPem });
    assert.doesNotMatch(before.text ?? '', /HTTP\/1\.1/, 'not trusted yet');
    writeFileSync(`${certs.caFile}.new`, `${certs.ca}\n${newCa.certPem}\n`);
    renameSync(`${certs.caFile}.new`, certs.caFile);
    await waitFor('a client of the new CA is served', async () => /^HTTP\/1\.1 200/.test((await rawGet(proxy.apiUrl, { ca: certs.ca, cert: newClient.certPem, key: newClient.keyPem })).text ?? ''), 5_000, 200);
    assert.match((await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client })).text ?? '', /^HTTP\/1\.1 200/, 'the old CA is still in the bundle');
  });

  it('logs and ignores a broken new certificate set, serving the previous one', async () => {
    const served = async (): Promise<string | undefined> => (await rawGet(proxy.apiUrl, { ca: certs.ca, ...certs.client })).socket?.getPeerCertificate().fingerprint256;
    const was = await served();
    assert.ok(was);
    const good = readFileSync(certs.serverCertFile, 'utf8');
    const failures = (): number => proxy.logs.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous certificate').length;
    const failed = failures();
    const other = await certs.issueServer(); // a valid certificate whose key is not the one on disk
    writeFileSync(`${certs.serverCertFile}.new`, other.certPem);
    renameSync(`${certs.serverCertFile}.new`, certs.serverCertFile);
    try {
      await waitFor('the reload failure is logged', () => failures() > failed, 5_000);
      assert.match(String(proxy.logs.filter((l) => l.msg === 'TLS certificate reload failed; keeping the previous certificate').at(-1)?.err), /does not match/);
      assert.equal(await served(), was, 'the previous certificate is still served');
    } finally {
      writeFileSync(`${certs.serverCertFile}.new`, good);
      renameSync(`${certs.serverCertFile}.new`, certs.serverCertFile);
    }
  });
});
