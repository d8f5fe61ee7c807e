import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RESOURCE_VERSION_PATTERN, rvAtLeast } from '../../src/kube/resource-version.js';

describe('rvAtLeast (resourceVersions compared as etcd revisions)', () => {
  const cases: Array<[string, string, boolean]> = [
    ['010', '10', true], ['5', '5', true], ['10', '9', true], ['9', '10', false],
    ['100000000000000000001', '100000000000000000000', true],
    // Not numbers: equality only, and never a throw (BigInt('11a') would throw).
    ['abc', '5', false], ['5', 'abc', false], ['abc', 'abc', true], ['abc', 'abd', false], ['', '1', false], ['1', '', false],
    // Digits with something before or after them are not numbers: both anchors of both tests.
    ['12a', '11', false], ['a12', '11', false], ['12', '11a', false], ['12', 'a11', false],
  ];
  for (const [a, b, want] of cases) it(`${JSON.stringify(a)} >= ${JSON.stringify(b)} is ${want}`, () => assert.equal(rvAtLeast(a, b), want));
});

describe('RESOURCE_VERSION_PATTERN (what a client may ask for)', () => {
  for (const ok of ['0', '12', '9'.repeat(20)]) it(`accepts ${ok}`, () => assert.match(ok, RESOURCE_VERSION_PATTERN));
  for (const bad of ['', '9'.repeat(21), '12a', 'a12', '-1', '1 ']) it(`refuses ${JSON.stringify(bad)}`, () => assert.doesNotMatch(bad, RESOURCE_VERSION_PATTERN));
});
