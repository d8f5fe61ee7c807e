// The write floor: a bare Node.js HTTPS server (mTLS, keep-alive) that relays each request
// as it is (method, path, body) to kube-apiserver over one keep-alive agent with the
// proxy's bearer token, and answers with the upstream status and body. It is the least
// any proxy in Node does for a write: one extra TLS hop each way. See startRelay in bench/lib.ts.
// Usage: node bench/relay-server.mjs CERT KEY CA UPSTREAM_URL UPSTREAM_CA_FILE  (token on stdin; prints its port)
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [cert, key, ca] = process.argv.slice(2, 5).map((f) => readFileSync(f));
const upstream = new URL(process.argv[5]);
const agent = new https.Agent({ keepAlive: true, ca: readFileSync(process.argv[6]) });
let token = '';
const server = https.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const up = https.request(new URL(req.url, upstream), {
      method: req.method, agent,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body.length ? { 'content-type': 'application/json', 'content-length': body.length } : {}) },
    }, (r) => {
      const out = [];
      r.on('data', (c) => out.push(c));
      r.on('end', () => {
        const b = Buffer.concat(out);
        res.writeHead(r.statusCode, { 'content-type': 'application/json', 'content-length': b.length }).end(b);
      });
    });
    up.on('error', () => res.writeHead(502).end());
    up.end(body);
  });
});
server.keepAliveTimeout = 72_000;
createInterface({ input: process.stdin }).once('line', (t) => {
  token = t;
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
});
process.stdin.on('end', () => process.exit(0));
