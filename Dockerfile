# Stompede: one broker node.
#   docker build -t stompede .
#   docker run --rm -p 61613:61613 -p 15674:15674 -p 15692:15692 stompede
#   docker run --rm -e STOMPEDE_REDIS=redis://redis:6379 -e STOMPEDE_NODE_ID=node-1 stompede
# Settings come from STOMPEDE_* variables, or flags after the image name (docs/configuration.md). Nothing in the
# ENTRYPOINT sets a setting, so every STOMPEDE_* variable given to the container takes effect.
#
# Node.js 26 is the Active LTS line (until 2027-10, end of life 2029-04); package.json still declares
# `node >=20`, and the specs run on Node 20, so the code keeps to what both offer.

# ---- build: dev dependencies, tsc, and the chat page (web/ → dist/web/) ----------------------------------
FROM node:26-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY frames ./frames
COPY broker ./broker
COPY bridge ./bridge
COPY bin ./bin
COPY web ./web
RUN npm run build

# ---- runtime: production dependencies and the compiled code only ----------------------------------------
FROM node:26-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/frames ./dist/frames
COPY --from=build /app/dist/broker ./dist/broker
COPY --from=build /app/dist/bridge ./dist/bridge
COPY --from=build /app/dist/bin ./dist/bin
COPY --from=build /app/dist/web ./dist/web

# The image's own unprivileged user (uid 1000).
USER node

# Inside a container a node listens on every interface (published ports decide what is reachable), and the
# operator endpoints (/metrics, /healthz, /readyz) get their own port, as the HEALTHCHECK below and the
# Kubernetes probes (deploy/k8s/) expect. Set as variables, not flags, so `-e STOMPEDE_HOST=…` still wins.
ENV STOMPEDE_HOST=0.0.0.0
ENV STOMPEDE_OPS_PORT=15692

# STOMP over TCP, STOMP over WebSocket (and the chat page), STOMP over TLS, secure WebSocket (both listen only
# with a certificate and key), and the ops port.
EXPOSE 61613 15674 61614 15673 15692

# Liveness only (/healthz): /readyz also fails on purpose (starting, draining on SIGTERM), and Docker would
# count that against the container. No curl in slim images: node itself asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.STOMPEDE_OPS_PORT || 15692) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# On `docker stop` (SIGTERM) the node answers /readyz 503 for shutdownDrainMs (5 s), then closes its listeners
# and gives clients closeTimeoutMs (2 s): give the container more than Docker's default 10 s when raising those
# (`docker stop -t 20`, compose `stop_grace_period`).
ENTRYPOINT ["node", "dist/bin/stompede.js"]
