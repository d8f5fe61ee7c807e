import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemError, badRequest, conflict, notFound, unavailable, type ProblemReason } from '../../src/errors.js';

describe('ProblemError renders RFC 9457 bodies', () => {
  const cases: Array<[number, ProblemReason, string]> = [
    [400, 'BadRequest', 'Bad Request'], [401, 'Unauthorized', 'Unauthorized'], [403, 'Forbidden', 'Forbidden'],
    [404, 'NotFound', 'Not Found'], [405, 'MethodNotAllowed', 'Method Not Allowed'], [408, 'RequestTimeout', 'Request Timeout'],
    [409, 'Conflict', 'Conflict'], [413, 'PayloadTooLarge', 'Content Too Large'], [415, 'UnsupportedMediaType', 'Unsupported Media Type'],
    [417, 'ExpectationFailed', 'Expectation Failed'], [422, 'Invalid', 'Unprocessable Content'], [429, 'TooManyRequests', 'Too Many Requests'],
    [431, 'RequestHeaderFieldsTooLarge', 'Request Header Fields Too Large'], [500, 'InternalError', 'Internal Server Error'],
    [502, 'BadGateway', 'Bad Gateway'], [503, 'ServiceUnavailable', 'Service Unavailable'], [504, 'GatewayTimeout', 'Gateway Timeout'],
  ];
  for (const [status, reason, title] of cases) {
    it(`${status} ${reason} has type urn:k8s-api-proxy:problem:${reason} and title "${title}"`, () => {
      const p = new ProblemError(status, reason, `detail of ${reason}`);
      assert.deepEqual(p.toBody(), { type: `urn:k8s-api-proxy:problem:${reason}`, title, status, detail: `detail of ${reason}`, reason });
    });
  }

  it('is an Error named ProblemError, with no extra headers unless given, and keeps its cause', () => {
    const cause = new Error('root');
    const p = new ProblemError(502, 'BadGateway', 'x', { cause });
    assert.ok(p instanceof Error);
    assert.equal(p.name, 'ProblemError');
    assert.deepEqual(new ProblemError(400, 'BadRequest', 'x').headers, {});
    assert.equal(p.cause, cause);
    assert.match(String(p), /^ProblemError: x$/);
  });

  it('has shorthands for the common cases; 503 carries Retry-After in whole seconds', () => {
    assert.deepEqual([badRequest('a'), notFound('b'), conflict('c')].map((p) => [p.status, p.reason, p.message]), [[400, 'BadRequest', 'a'], [404, 'NotFound', 'b'], [409, 'Conflict', 'c']]);
    const u = unavailable('down', 2);
    assert.deepEqual([u.status, u.reason, u.headers], [503, 'ServiceUnavailable', { 'retry-after': '2' }]);
    assert.deepEqual(unavailable('down').headers, { 'retry-after': '1' });
  });
});
