/**
 * A stand-in for kubelet, for Pods the tests need to run (such as the chart's `helm test`
 * Pod): no kubelet or container runtime runs on the local control plane.
 *
 * It reads the Pod from the API server, runs its one container's command and args as a
 * local process (the chart's test image is the proxy's Node.js image, and this machine has
 * Node.js), with the Pod's `env` values and its Secret volumes written to a temp directory,
 * then writes the outcome to the Pod's status as kubelet would (phase Succeeded or Failed,
 * the container's exit code), so whoever watches the Pod (`helm test`) sees it finish.
 *
 * What stands in for the cluster, and is therefore not tested by it: the image itself
 * (the host's `node` runs the command), the Secret mount (files written from the Secret's
 * data at the mount path's stand-in directory, referenced through env values), and cluster
 * DNS plus the Service's routing (`hosts` rewrites `name.namespace.svc:port` in env values
 * to a local address where a real `bin/api` listens).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectlOk } from './cluster.js';

/** What the stand-in kubelet did. */
export interface PodRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The command line it ran, as [command, ...args]. */
  argv: string[];
  /** The environment it passed, after the rewrites. */
  env: Record<string, string>;
}

/**
 * Runs Pod `namespace/name` (one container, `env` with plain values, Secret volumes only)
 * and records its end in the Pod's status. `hosts` maps `host:port` in env values to
 * their stand-in `host:port`. Throws when the Pod uses something this stand-in does not
 * provide, naming it; never throws for the command's own failure (see `exitCode`).
 */
export async function runPodLikeKubelet(namespace: string, name: string, hosts: Record<string, string>): Promise<PodRun> {
  const pod = JSON.parse(await kubectlOk(['-n', namespace, 'get', 'pod', name, '-o', 'json']));
  const containers = pod.spec.containers as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (containers.length !== 1) throw new Error(`pod ${namespace}/${name}: ${containers.length} containers, the stand-in runs exactly one`);
  const [c] = containers;
  if (!c.command?.length) throw new Error(`pod ${namespace}/${name}: container ${c.name} has no command; the stand-in cannot run an image's entrypoint`);

  const mounts: Record<string, string> = {};
  for (const m of (c.volumeMounts ?? []) as Array<{ name: string; mountPath: string }>) {
    const volume = (pod.spec.volumes ?? []).find((v: { name: string }) => v.name === m.name);
    if (!volume?.secret) throw new Error(`pod ${namespace}/${name}: volume ${m.name} is not a Secret volume`);
    const secret = JSON.parse(await kubectlOk(['-n', namespace, 'get', 'secret', volume.secret.secretName, '-o', 'json']));
    const dir = mkdtempSync(join(tmpdir(), `pod-${m.name}-`));
    for (const [file, b64] of Object.entries(secret.data ?? {})) writeFileSync(join(dir, file), Buffer.from(String(b64), 'base64'), { mode: 0o600 });
    mounts[m.mountPath] = dir;
  }

  const env: Record<string, string> = {};
  for (const e of (c.env ?? []) as Array<{ name: string; value?: string; valueFrom?: unknown }>) {
    if (e.valueFrom) throw new Error(`pod ${namespace}/${name}: env ${e.name} uses valueFrom, which the stand-in does not resolve`);
    let value = e.value ?? '';
    for (const [path, dir] of Object.entries(mounts)) if (value === path || value.startsWith(`${path}/`)) value = dir + value.slice(path.length);
    for (const [from, to] of Object.entries(hosts)) value = value.split(from).join(to);
    env[e.name] = value;
  }

  const argv = [...c.command, ...(c.args ?? [])] as string[];
  const run = await new Promise<{ exitCode: number; stdout: string; stderr: string }>((resolve) => {
    execFile(argv[0], argv.slice(1), { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ exitCode: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });

  const now = new Date().toISOString();
  const status = {
    phase: run.exitCode === 0 ? 'Succeeded' : 'Failed',
    containerStatuses: [{
      name: c.name, image: c.image, imageID: '', ready: false, restartCount: 0, started: false,
      state: { terminated: { exitCode: run.exitCode, reason: run.exitCode === 0 ? 'Completed' : 'Error', startedAt: now, finishedAt: now } },
    }],
  };
  await kubectlOk(['-n', namespace, 'patch', 'pod', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  return { ...run, argv, env };
}
