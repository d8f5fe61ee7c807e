// The benchmark floor: a bare Node.js HTTPS server (mTLS, keep-alive) answering every
// request with the bytes of the file last named on stdin. See startFloor in bench/lib.ts.
// Usage: node bench/floor-server.mjs CERT KEY CA  (prints its port, then "ok" per file loaded)
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [cert, key, ca] = process.argv.slice(2, 5).map((f) => readFileSync(f));
let body = Buffer.alloc(0);
let headers = {};
const server = https.createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
  req.resume();
  res.writeHead(200, { ...headers, 'content-length': body.length }).end(body);
});
// Fastify's default, so idle connections between interleaved rounds live as long as the proxy's.
server.keepAliveTimeout = 72_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
createInterface({ input: process.stdin }).on('line', (file) => {
  body = readFileSync(file);
  headers = JSON.parse(readFileSync(`${file}.headers`, 'utf8'));
  console.log('ok');
});
process.stdin.on('end', () => process.exit(0));
