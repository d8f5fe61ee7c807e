import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { unfitReason } from '../../src/auth/client-identity.js';
import { createCa, issueCert, validateCertInputs, type IssuedCert } from '../../hack/certs.js';

const der = (c: IssuedCert): Buffer => Buffer.from(new X509Certificate(c.certPem).raw);

describe('unfitReason (checks OpenSSL leaves to us)', () => {
  let ca: IssuedCert;
  before(async () => { ca = await createCa('unit CA'); });

  it('accepts a current clientAuth certificate', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'ok', usages: ['client'] })), Date.now()), undefined);
  });
  it('accepts a certificate for both usages', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'both', usages: ['server', 'client'] })), Date.now()), undefined);
  });
  it('refuses a serverAuth-only certificate', async () => {
    assert.match(unfitReason(der(await issueCert(ca, { commonName: 's', usages: ['server'] })), Date.now()) ?? '', /clientAuth/);
  });
  it('refuses a certificate that expired since (a resumed session would skip OpenSSL)', async () => {
    const c = await issueCert(ca, { commonName: 'c', usages: ['client'], days: 1 });
    assert.match(unfitReason(der(c), Date.now() + 2 * 86_400_000) ?? '', /expired/);
  });
  it('refuses a certificate without a CN', async () => {
    assert.match(unfitReason(der(await issueCert(ca, { commonName: '', subject: [{ O: ['x'] }], usages: ['client'] })), Date.now()) ?? '', /has no CN/);
  });
  it('refuses a certificate with two CNs', async () => {
    assert.match(unfitReason(der(await issueCert(ca, { commonName: '', subject: [{ CN: ['alice'] }, { CN: ['admin'] }], usages: ['client'] })), Date.now()) ?? '', /has 2 CNs/);
  });
  it('refuses two CNs inside one multi-valued RDN (O=x+CN=bob) next to another CN', async () => {
    const c = await issueCert(ca, { commonName: '', subject: [{ CN: ['alice'] }, { O: ['x'], CN: ['bob'] }], usages: ['client'] });
    assert.match(unfitReason(der(c), Date.now()) ?? '', /has 2 CNs/);
  });
  it('accepts exactly one CN inside a multi-valued RDN (CN=carol+O=acme)', async () => {
    const c = await issueCert(ca, { commonName: '', subject: [{ CN: ['carol'], O: ['acme'] }], usages: ['client'] });
    assert.equal(unfitReason(der(c), Date.now()), undefined);
  });
  const deceptive: Array<[string, string, RegExp]> = [
    ['a blank CN', '   ', /CN is blank/],
    ['a CN with a newline', 'a\nCN=b', /control or format/],
    ['a CN with a tab', 'a\tb', /control or format/],
    ['a CN with a right-to-left override (U+202E)', 'admin\u202Egnp.exe', /control or format/],
    ['a CN with a C1 control (U+0085)', 'alice\u0085bob', /control or format/],
    ['a CN with a zero-width space (U+200B, format)', 'ad\u200Bmin', /control or format/],
    ['a CN with a line separator (U+2028)', 'alice\u2028bob', /control or format/],
    ['a single CN "alice,bob" that reads as two', 'alice,bob', /comma/],
  ];
  for (const [label, cn, want] of deceptive) {
    it(`refuses ${label}`, async () => {
      assert.match(unfitReason(der(await issueCert(ca, { commonName: cn, usages: ['client'] })), Date.now()) ?? '', want);
    });
  }
  it('refuses an O (group) with a bidi override, and accepts plain ones', async () => {
    const bad = await issueCert(ca, { commonName: '', subject: [{ CN: ['carol'] }, { O: ['dev'] }, { O: ['ad\u202Emin'] }], usages: ['client'] });
    assert.match(unfitReason(der(bad), Date.now()) ?? '', /O holds Unicode control or format/);
    const good = await issueCert(ca, { commonName: '', subject: [{ CN: ['carol'] }, { O: ['dev'] }, { O: ['ops'] }], usages: ['client'] });
    assert.equal(unfitReason(der(good), Date.now()), undefined);
  });
  it('accepts non-ASCII letters (a CN is UTF-8, not ASCII)', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'José Müller', usages: ['client'] })), Date.now()), undefined);
  });
  it('refuses a CA certificate even with clientAuth', async () => {
    assert.match(unfitReason(der(await issueCert(ca, { commonName: 'sub', usages: ['client'], ca: true })), Date.now()) ?? '', /CA certificate/);
  });
  it('accepts a comma in an O (a group is one value; only a CN would read as two names)', async () => {
    const c = await issueCert(ca, { commonName: '', subject: [{ CN: ['carol'] }, { O: ['Acme, Inc.'] }], usages: ['client'] });
    assert.equal(unfitReason(der(c), Date.now()), undefined);
  });
  it('names the attribute and the reason of an unfit name exactly', async () => {
    const cases: Array<[Array<Record<string, string[]>>, string]> = [
      [[{ CN: ['carol'] }, { O: [' '] }], 'certificate subject O is blank'],
      [[{ CN: ['a\u0007b'] }], 'certificate subject CN holds Unicode control or format characters'],
      [[{ CN: ['carol'] }, { O: ['a\u0000b'] }], 'certificate subject O holds Unicode control or format characters'],
      [[{ CN: ['a,b'] }], 'certificate subject CN holds a comma (it would read as several names)'],
    ];
    for (const [subject, want] of cases) {
      assert.equal(unfitReason(der(await issueCert(ca, { commonName: '', subject, usages: ['client'] })), Date.now()), want, JSON.stringify(subject));
    }
  });
  it('accepts a CN with an equals sign as one CN', async () => {
    assert.equal(unfitReason(der(await issueCert(ca, { commonName: 'a=b', usages: ['client'] })), Date.now()), undefined);
  });
  it('refuses a certificate not valid yet', async () => {
    const c = await issueCert(ca, { commonName: 'c', usages: ['client'], notBefore: new Date(Date.now() + 86_400_000), days: 2 });
    assert.match(unfitReason(der(c), Date.now()) ?? '', /not yet valid/);
  });
});

describe('validateCertInputs (make generate-certs)', () => {
  const cases: Array<[string | undefined, string[], string | undefined, RegExp | undefined]> = [
    [undefined, [], undefined, undefined],
    ['365', ['api.example.com', '10.0.0.5', '::1', '*.svc.example.com'], 'ci-pipeline', undefined],
    ['abc', [], undefined, /CERT_DAYS/],
    ['0', [], undefined, /CERT_DAYS/],
    ['-5', [], undefined, /CERT_DAYS/],
    ['1e9', [], undefined, /CERT_DAYS/],
    [undefined, ['bad_name!'], undefined, /EXTRA_SANS: "bad_name!"/],
    [undefined, ['999.1.1.1'], undefined, /EXTRA_SANS: "999.1.1.1"/],
    [undefined, [], 'x'.repeat(65), /CLIENT_CN/],
    [undefined, [], '   ', /CLIENT_CN/],
    [undefined, [], 'a\nCN=b', /CLIENT_CN/],
    [undefined, [], 'admin\u202Ex', /CLIENT_CN/],
    [undefined, [], 'alice,bob', /CLIENT_CN/],
    [undefined, [`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`], undefined, /EXTRA_SANS/],
    [undefined, ['fe80::1%eth0'], undefined, /EXTRA_SANS/],
    [undefined, ['0x7f.1'], undefined, /EXTRA_SANS/],
  ];
  for (const [days, sans, cn, want] of cases) {
    it(`${JSON.stringify({ days, sans, cn }).slice(0, 80)} → ${want ?? 'ok'}`, () => {
      const errors = validateCertInputs(days, sans, cn);
      if (want) assert.match(errors.join('\n'), want);
      else assert.deepEqual(errors, []);
    });
  }
  it('accepts CLIENT_GROUPS of printable names and names a bad one', () => {
    assert.deepEqual(validateCertInputs(undefined, [], undefined, ['ci', 'shop deployers']), []);
    assert.match(validateCertInputs(undefined, [], undefined, ['ok', 'a\tb']).join('\n'), /CLIENT_GROUPS: "a\tb"/);
    assert.match(validateCertInputs(undefined, [], undefined, ['g'.repeat(65)]).join('\n'), /CLIENT_GROUPS/);
  });
});
