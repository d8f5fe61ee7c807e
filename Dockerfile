# syntax=docker/dockerfile:1
# k8s-api-proxy container image.
# Build stage: install the locked dependencies and bundle src/ into one file.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY src/ src/
RUN node scripts/build.mjs

# Runtime stage: Node.js 24 LTS, the bundle only (its production dependencies are
# inside it), no shell tools added, no certificates or secrets: those are mounted.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=0:0 /src/bin/api /src/bin/api.LEGAL.txt /app/
# A numeric non-root user, so runAsNonRoot can be verified by the kubelet.
USER 65532:65532
EXPOSE 8443 8081
# The bundle runs itself: its first line (#!/usr/bin/env -S node FLAGS) carries the
# Node.js flags it is measured with (scripts/build.mjs), in the image as on a laptop.
ENTRYPOINT ["/app/api"]
CMD ["--tls-cert", "/etc/k8s-api-proxy/tls/tls.crt", "--tls-key", "/etc/k8s-api-proxy/tls/tls.key", "--client-ca", "/etc/k8s-api-proxy/tls/ca.crt"]
