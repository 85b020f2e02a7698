# Stompede: one broker node.
#   docker build -t stompede .
#   docker run --rm -p 61613:61613 -p 15674:15674 stompede
#   docker run --rm -e STOMPEDE_REDIS=redis://redis:6379 stompede --node-id node-1
# Settings come from STOMPEDE_* variables or flags after the image name (docs/configuration.md).

# ---- build: dev dependencies, tsc, and the chat page (web/ → dist/web/) ----------------------------------
FROM node:20-bookworm-slim AS build
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
FROM node:20-bookworm-slim
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

# STOMP over TCP and STOMP over WebSocket (which also serves the chat page, /healthz, /readyz and /metrics).
EXPOSE 61613 15674

# No curl in slim images: node itself asks /healthz on the WebSocket port (STOMPEDE_WS_PORT when set).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.STOMPEDE_WS_PORT || 15674) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Inside a container a node listens on every interface; flags after the image name are appended.
ENTRYPOINT ["node", "dist/bin/stompede.js", "--host", "0.0.0.0"]
