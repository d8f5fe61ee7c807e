// `helm test`: GET /healthz over mTLS with the client certificate from the test Secret.
// Exit 0 only on 200; the status and body (or the error) go to the Pod's log.
// Environment: K8S_API_PROXY_TEST_URL (the Service's /healthz URL), K8S_API_PROXY_TEST_CERTS
// (directory holding tls.crt, tls.key and ca.crt).
// getBuiltinModule works whether `node -e` treats the script as CommonJS or as a module.
const https = process.getBuiltinModule("node:https");
const fs = process.getBuiltinModule("node:fs");
const path = process.getBuiltinModule("node:path");
const url = new URL(process.env.K8S_API_PROXY_TEST_URL);
const dir = process.env.K8S_API_PROXY_TEST_CERTS;
const read = (f) => fs.readFileSync(path.join(dir, f));
const req = https.get(url, { ca: read("ca.crt"), cert: read("tls.crt"), key: read("tls.key"), timeout: 10000 }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (c) => { body += c; });
  res.on("end", () => {
    console.log(`GET ${url.href}: ${res.statusCode} ${body}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
});
req.on("timeout", () => req.destroy(new Error(`no answer from ${url.href} within 10 s`)));
req.on("error", (e) => { console.error(`GET ${url.href} failed: ${e.message}`); process.exit(1); });
