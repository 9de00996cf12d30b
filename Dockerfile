# syntax=docker/dockerfile:1
# The geosfu node image: `docker build -t geosfu .` at the repository root.
# infra/compose/docker-compose.yml runs it for one region; the README's "Deploying" says how.

# ---- build: every dependency, TypeScript and the demo page bundle -------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY infra/lab ./infra/lab
COPY infra/docker ./infra/docker
RUN npm ci --no-audit --no-fund && npm run build \
  && sh infra/docker/stage-production.sh /src /opt/geosfu \
  && cp infra/docker/healthcheck.mjs /opt/geosfu/healthcheck.mjs

# ---- runtime: built code and production dependencies only, as an unprivileged user ---------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    SFU_HTTP_PORT=7880 \
    SFU_METRICS_PORT=9464 \
    SFU_RTC_PORT_RANGE=40000-40999
WORKDIR /opt/geosfu
COPY --from=build --chown=root:root /opt/geosfu ./
# The node image's unprivileged user (uid 1000); the code stays owned by root, read-only to it.
USER node
# Signalling and the demo page (HTTPS with SFU_TLS_CERT), metrics, WebRTC media.
EXPOSE 7880/tcp 9464/tcp 40000-40999/udp
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "healthcheck.mjs"]
# The node is PID 1 (exec form, no shell): SIGTERM reaches it and it drains (clients are told
# to reconnect elsewhere, then it deregisters and exits); give it SFU_DRAIN_TIMEOUT_MS (30 s)
# plus a margin before the SIGKILL (compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["node", "packages/node/bin/sfu-node.mjs"]
