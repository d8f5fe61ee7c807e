// A /livez prober in a process of its own, so the load generator's event loop never
// delays the probes it measures. Usage: node bench/probe.mjs URL INTERVAL_MS DURATION_MS
// Prints the sorted latencies (milliseconds) as one JSON array.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const [url, intervalMs, durationMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
const end = performance.now() + durationMs;
while (performance.now() < end) {
  const t0 = performance.now();
  await new Promise((resolve, reject) => http.get(url, { agent }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
  latencies.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, intervalMs));
}
agent.destroy();
console.log(JSON.stringify(latencies.sort((a, b) => a - b)));
