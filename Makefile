# Two commands matter to a new user: `make run` (one broker node) and `make test` (every test).
# Everything else here is a step of those two, or a developer convenience.
SHELL := /bin/bash
NODE_STAMP := node_modules/.package-lock.json

.PHONY: run test lint build install services services-stop cluster cluster-stop bench clean

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

install: $(NODE_STAMP)

# Incremental: each step runs only when one of its inputs is newer than its stamp, so a second `make run` with
# nothing edited starts the node at once. tsc itself is incremental too (tsconfig.json `incremental`, its
# .tsbuildinfo kept inside dist/ so that `make clean` forgets it together with what it describes).
TS_SOURCES := $(shell find frames broker bridge bin spec bench -name '*.ts')
WEB_SOURCES := $(wildcard web/*.ts web/*.html web/*.css) web/tsconfig.json
TSC_STAMP := dist/.tsc.stamp
WEB_STAMP := dist/web/.web.stamp

$(TSC_STAMP): $(NODE_STAMP) tsconfig.json $(TS_SOURCES)
	node_modules/.bin/tsc -p .
	@touch $@

# The chat page (web/ → dist/web/, with @stomp/stompjs copied from node_modules: no CDN at runtime).
$(WEB_STAMP): $(NODE_STAMP) package.json $(WEB_SOURCES)
	npm run --silent build:web
	@touch $@

build: $(TSC_STAMP) $(WEB_STAMP)

# One node on the in-memory bus: TCP 127.0.0.1:61613, WebSocket 127.0.0.1:15674/ws, ops (metrics, probes) 127.0.0.1:15692.
run: build
	node dist/bin/stompede.js $(ARGS)

# Lints first (`npm run lint`: Prettier check, dependency rules, ShellCheck, ESLint, each reported); checks (and
# installs) every tool the specs need, failing here naming any that is missing; then starts Redis, Kafka and the
# MongoDB-protocol server once for the whole run, runs every spec, stops them. Mocha fails on a `.only` and on any
# pending test not declared in spec/pending-allowed.json.
test: build lint
	infra/tools.sh
	infra/with-services.sh npx mocha

lint: install
	npm run --silent lint

services: build
	infra/services.sh start redis kafka mongo redis-cluster

services-stop:
	infra/services.sh stop

# Three nodes wired to Redis, Kafka and MongoDB: TCP 61613/61623/61633, WebSocket 15674/15684/15694.
cluster: build
	infra/cluster.sh start

cluster-stop:
	infra/cluster.sh stop

clean:
	rm -rf dist
