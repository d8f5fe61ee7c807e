/**
 * Why src/kube/reflector.ts replaces client-node 1.4's informer: these tests pin down
 * the library behaviour we could not live with. If an upgrade makes them fail, the
 * library has changed and the replacement can be reconsidered.
 */
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig, makeInformer, AppsV1Api, type V1Deployment } from '@kubernetes/client-node';
import { fakeApiServer, json, deployment, type FakeApiServer } from '../helpers/fake-api-server.js';
import { sleep } from '../helpers/wait.js';

function kubeConfig(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  return kc;
}

describe('@kubernetes/client-node 1.4 informer (the reason for our own reflector)', () => {
  let server: FakeApiServer | undefined;
  afterEach(async () => { await server?.close(); server = undefined; });

  it('stops for good after one failed watch: no retry, no backoff', async () => {
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) return json(res, 200, { kind: 'DeploymentList', apiVersion: 'apps/v1', metadata: { resourceVersion: '1' }, items: [deployment('ns', 'a', '1')] });
      json(res, 500, { kind: 'Status', code: 500, message: 'transient' });
    });
    const kc = kubeConfig(server.url);
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer<V1Deployment>(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces());
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    await informer.start();
    await sleep(3_000); // client-go would have retried after ~0.8 s and ~1.6 s
    const watches = server.requests.filter((r) => r.includes('watch=true')).length;
    await informer.stop();
    assert.equal(errors.length, 1, 'the error is reported once');
    assert.equal(watches, 1, 'and the informer never tries again');
  });

  it('sends no timeoutSeconds on its watch, so a half-open connection stalls it silently', async () => {
    server = await fakeApiServer((req, res) => {
      if (!req.url!.includes('watch=true')) return json(res, 200, { kind: 'DeploymentList', apiVersion: 'apps/v1', metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200).flushHeaders(); // silence
    });
    const kc = kubeConfig(server.url);
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer<V1Deployment>(kc, '/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces());
    await informer.start();
    await sleep(200);
    const watch = server.requests.find((r) => r.includes('watch=true'))!;
    await informer.stop();
    assert.equal(new URL(watch, 'http://x').searchParams.get('timeoutSeconds'), null);
  });
});
