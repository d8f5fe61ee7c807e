import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RefusalLog, escapeInvisible } from '../../src/tls/refusal-log.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  return { lines, logger: pino({ level: 'info' }, stream) };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('RefusalLog (the one place refused TLS clients are logged)', () => {
  it('logs each refusal at warn with its code, reason, address, subject and fingerprint', async () => {
    const { lines, logger } = capture();
    new RefusalLog(logger).record({ code: 'CERT_HAS_EXPIRED', reason: 'expired', remote: '127.0.0.1', subject: 'CN=bob', fingerprint256: 'AA:BB' });
    await tick();
    assert.equal(lines.length, 1);
    assert.equal(lines[0].level, 40);
    assert.equal(lines[0].msg, 'TLS client refused');
    assert.deepEqual([lines[0].code, lines[0].reason, lines[0].remote, lines[0].subject, lines[0].fingerprint256], ['CERT_HAS_EXPIRED', 'expired', '127.0.0.1', 'CN=bob', 'AA:BB']);
  });

  it('keeps a flood of 1,000 to a bounded number of lines plus one count per window', async () => {
    const { lines, logger } = capture();
    let clock = 0;
    const log = new RefusalLog(logger, { maxLines: 20, windowMs: 10_000, now: () => clock });
    for (let i = 0; i < 1_000; i++) log.record({ code: i % 2 ? 'ERR_TLS_HANDSHAKE_TIMEOUT' : 'MAX_CONNECTIONS_PER_IP', reason: 'x' });
    clock = 10_000;
    log.record({ code: 'NO_CLIENT_CERTIFICATE', reason: 'none' }); // the next window: summary of the last, then this line
    await tick();
    const refused = lines.filter((l) => l.msg === 'TLS client refused');
    const summaries = lines.filter((l) => l.suppressed !== undefined);
    assert.equal(refused.length, 21);
    assert.equal(summaries.length, 1);
    assert.equal(summaries[0].suppressed, 980);
    assert.deepEqual(summaries[0].byCode, { ERR_TLS_HANDSHAKE_TIMEOUT: 490, MAX_CONNECTIONS_PER_IP: 490 });
    assert.deepEqual(log.counts(), { MAX_CONNECTIONS_PER_IP: 500, ERR_TLS_HANDSHAKE_TIMEOUT: 500, NO_CLIENT_CERTIFICATE: 1 });
  });

  it('writes the summary when the window ends even if no refusal follows (timer), and on flush', async () => {
    const { lines, logger } = capture();
    const log = new RefusalLog(logger, { maxLines: 1, windowMs: 30 });
    log.record({ code: 'A', reason: 'a' });
    log.record({ code: 'A', reason: 'a' });
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(lines.filter((l) => l.suppressed === 1).length, 1);
    log.flush();
    assert.equal(lines.filter((l) => l.suppressed !== undefined).length, 1, 'nothing more to summarize');
  });

  it('shows control and format characters of a subject escaped, so the log cannot be reordered or hidden', async () => {
    assert.equal(escapeInvisible('CN=admin\u202Eexe.nip, O=a\u0085b'), 'CN=admin\\u{202e}exe.nip, O=a\\u{85}b');
    const { lines, logger } = capture();
    new RefusalLog(logger).record({ code: 'UNFIT_CERTIFICATE', reason: 'r', subject: 'CN=x\u2028y' });
    await tick();
    assert.equal(lines[0].subject, 'CN=x\\u{2028}y');
  });
});
