/**
 * No Docker engine runs where the specs run, so this checks what can be checked without one: that the image and
 * the compose file speak the CLI's language (real flags, real STOMPEDE_* keys, valid values, matching ports), and
 * that the image's HEALTHCHECK command works against a live broker.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CONFIG, envName, loadConfig, type BrokerConfig } from '../../broker/config.js';
import { startBroker } from '../support/broker.js';
import { freePort, runCli, runNode } from './cli.js';
import { wsPort } from './http.js';
import { REPO } from './repo.js';

interface Instruction {
  readonly name: string;
  readonly args: string;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (m !== null && !line.trimStart().startsWith('#')) out.push({ name: m[1] as string, args: (m[2] as string).trim() });
  }
  return out;
}

/** The exec form of an instruction (`["a", "b"]`), after any `--option=value` flags of HEALTHCHECK. */
function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec form: ${args}`);
  return parsed;
}

/** The variables the runtime stage sets with `ENV KEY=value …` (no quoted values in our Dockerfile). */
function imageEnv(runtime: readonly Instruction[]): Record<string, string> {
  const pairs = runtime.filter((s) => s.name === 'ENV').flatMap((s) => s.args.split(/\s+/));
  for (const p of pairs) if (!/^[A-Z_][A-Z0-9_]*=\S*$/.test(p)) throw new Error(`ENV ${p}: write ENV KEY=value`);
  return Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

/** Compose durations (`15s`, `1m30s`, `500ms`) in milliseconds. */
function durationMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.map((p) => p[0]).join('') !== text) throw new Error(`not a compose duration: ${text}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (units[p[2] as string] as number), 0);
}

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[] | string;
  environment?: Record<string, string | number> | string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, unknown> | string[];
  stop_grace_period?: string;
}

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const steps = instructions(dockerfile);
const froms = steps.filter((s) => s.name === 'FROM');
const runtimeSteps = steps.slice(steps.lastIndexOf(froms[froms.length - 1] as Instruction));
/** What the image itself sets; a compose service's or `docker run -e` variables come on top. */
const IMAGE_ENV = imageEnv(runtimeSteps);
const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};

function environment(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

const nodes = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

describe('ops › Docker image and compose file', () => {
  describe('Dockerfile', () => {
    it('builds in one stage with dev dependencies and tsc, and runs with production dependencies only', () => {
      expect(froms.length, 'a multi-stage build').to.be.at.least(2);
      const lastFrom = steps.lastIndexOf(froms[froms.length - 1] as Instruction);
      const build = steps.slice(0, lastFrom);
      const runtime = steps.slice(lastFrom);
      expect(build.some((s) => s.name === 'RUN' && /npm ci(?!.*--omit=dev)/.test(s.args))).to.equal(true);
      expect(
        build.some((s) => s.name === 'RUN' && /\btsc\b|npm run build\b/.test(s.args)),
        'compiles in the build stage',
      ).to.equal(true);
      expect(runtime.some((s) => s.name === 'RUN' && /npm ci --omit=dev/.test(s.args))).to.equal(true);
      expect(runtime.some((s) => s.name === 'RUN' && /\btsc\b|npm run build\b/.test(s.args))).to.equal(false);
      const copied = runtime.filter((s) => s.name === 'COPY' && s.args.startsWith('--from=')).map((s) => s.args.split(/\s+/)[1]);
      for (const folder of ['frames', 'broker', 'bridge', 'bin', 'web'])
        expect(copied, `dist/${folder} in the image`).to.include(`/app/dist/${folder}`);
    });

    it('copies only what exists in the repository', () => {
      for (const s of steps.filter((x) => x.name === 'COPY' && !x.args.startsWith('--from'))) {
        const sources = s.args.split(/\s+/).slice(0, -1);
        for (const source of sources) expect(existsSync(join(REPO, source)), `COPY ${source}`).to.equal(true);
      }
    });

    it('runs as a non-root user', () => {
      const users = steps.filter((s) => s.name === 'USER').map((s) => s.args);
      expect(users, 'a USER instruction').to.not.deep.equal([]);
      expect(users[users.length - 1]).to.not.match(/^(root|0)(:|$)/);
    });

    it('builds and runs on the same Node.js LTS line (even major, 22 or later), while package.json still allows Node 20', () => {
      const images = froms.map((f) => f.args.split(/\s+/)[0] as string);
      const majors = images.map((i) => Number(/^node:(\d+)(?:[-.]|$)/.exec(i)?.[1] ?? NaN));
      expect(
        majors.every((m) => Number.isInteger(m) && m >= 22 && m % 2 === 0),
        `node LTS images: ${images.join(', ')}`,
      ).to.equal(true);
      expect(new Set(images).size, 'one base image for both stages').to.equal(1);
      const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines?: { node?: string } };
      expect(pkg.engines?.node).to.equal('>=20');
    });

    it('sets only STOMPEDE_* variables that are real settings: every interface, and the ops port', () => {
      const known = new Set(Object.keys(DEFAULT_CONFIG).map(envName));
      const stompede = Object.keys(IMAGE_ENV).filter((k) => k.startsWith('STOMPEDE_'));
      expect(
        stompede.filter((k) => !known.has(k)),
        'unknown STOMPEDE_* variables',
      ).to.deep.equal([]);
      const config = loadConfig({ env: IMAGE_ENV });
      expect(config.host).to.equal('0.0.0.0');
      expect(config.opsPort, 'an ops listener for the HEALTHCHECK and the probes').to.be.greaterThan(0);
    });

    it('exposes every listener the image can open: TCP, WebSocket, TLS, secure WebSocket and the ops port', () => {
      const exposed = steps
        .filter((s) => s.name === 'EXPOSE')
        .flatMap((s) => s.args.split(/\s+/))
        .map((p) => Number(p.replace(/\/tcp$/, '')));
      const config = loadConfig({ env: IMAGE_ENV });
      expect(exposed).to.have.members([config.port, config.wsPort, config.tlsPort, config.wssPort, config.opsPort]);
      expect(exposed).to.have.length(5);
    });

    it('starts the CLI with no setting in ENTRYPOINT or CMD, so STOMPEDE_* given to the container win', async () => {
      const entrypoint = execForm(steps.find((s) => s.name === 'ENTRYPOINT')?.args ?? '[]');
      const cmd = steps.some((s) => s.name === 'CMD') ? execForm(steps.find((s) => s.name === 'CMD')?.args ?? '[]') : [];
      expect(entrypoint).to.deep.equal(['node', 'dist/bin/stompede.js']);
      expect(cmd, 'flags in CMD would override the variables as well').to.deep.equal([]);
      const asBuilt = await runCli([...entrypoint.slice(2), '--print-config'], IMAGE_ENV);
      expect(asBuilt.code, asBuilt.stderr).to.equal(0);
      expect((JSON.parse(asBuilt.stdout) as BrokerConfig).host).to.equal('0.0.0.0');
      // `docker run -e STOMPEDE_HOST=… -e STOMPEDE_OPS_PORT=…`: the container's variables replace the image's.
      const overridden = await runCli([...entrypoint.slice(2), '--print-config'], {
        ...IMAGE_ENV,
        STOMPEDE_HOST: '127.0.0.1',
        STOMPEDE_OPS_PORT: '9100',
      });
      expect(overridden.code, overridden.stderr).to.equal(0);
      const printed = JSON.parse(overridden.stdout) as BrokerConfig;
      expect([printed.host, printed.opsPort]).to.deep.equal(['127.0.0.1', 9100]);
    });

    it('has a HEALTHCHECK, in node, on /healthz of the ops port: passes against a live broker, fails when nothing answers', async () => {
      const check = execForm(steps.find((s) => s.name === 'HEALTHCHECK')?.args ?? '[]');
      expect(check[0], 'no curl in slim images: node runs the check').to.equal('node');
      expect(check.join(' ')).to.include('/healthz');
      expect(check.join(' '), 'liveness only: /readyz is 503 on purpose while draining').to.not.include('/readyz');
      expect(check.join(' ')).to.include('STOMPEDE_OPS_PORT');
      expect(check.join(' ')).to.include(String(loadConfig({ env: IMAGE_ENV }).opsPort));
      const b = await startBroker({ opsPort: 0 });
      try {
        const ops = b.addresses.ops;
        expect(ops, 'the test broker has an ops listener').to.not.equal(undefined);
        const ok = await runNode(check.slice(1), { STOMPEDE_OPS_PORT: String(ops?.port) }, 10_000);
        expect(ok.code, ok.stderr).to.equal(0);
        // The WebSocket port is not where the check looks (with an ops port, /healthz answers only there).
        const wrong = await runNode(check.slice(1), { STOMPEDE_OPS_PORT: String(wsPort(b)) }, 10_000);
        expect(wrong.code, 'the WebSocket port answers 404 for /healthz when an ops port is set').to.equal(1);
      } finally {
        await b.close();
      }
      const down = await runNode(check.slice(1), { STOMPEDE_OPS_PORT: String(await freePort()) }, 10_000);
      expect(down.code).to.equal(1);
    });

    it('.dockerignore keeps local builds and dependencies out of the context', () => {
      const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8')
        .split('\n')
        .map((l) => l.trim());
      for (const entry of ['node_modules', 'dist', '.git']) expect(ignored).to.include(entry);
    });
  });

  describe('docker-compose.yml', () => {
    const known = new Set(Object.keys(DEFAULT_CONFIG).map(envName));

    it('runs three Stompede nodes with distinct node ids', () => {
      expect(nodes.map(([name]) => name)).to.have.length(3);
      const ids = nodes.map(([, s]) => environment(s).STOMPEDE_NODE_ID);
      expect(new Set(ids).size).to.equal(3);
      expect(ids.every((id) => id !== undefined && id !== '')).to.equal(true);
    });

    for (const [name, service] of nodes) {
      describe(name, () => {
        const env = environment(service);

        /** The node's environment in its container: the image's variables, then the service's. */
        const inContainer = { ...IMAGE_ENV, ...env };

        it('sets only STOMPEDE_* variables that are config keys, with values the CLI accepts', () => {
          const stompede = Object.keys(env).filter((k) => k.startsWith('STOMPEDE_'));
          expect(
            stompede.filter((k) => !known.has(k)),
            'unknown STOMPEDE_* variables',
          ).to.deep.equal([]);
          expect(() => loadConfig({ env: inContainer })).to.not.throw();
        });

        it('maps host ports to the ports the node is configured with: STOMP, WebSocket and ops', () => {
          const config = loadConfig({ env: inContainer });
          const mappings = (service.ports ?? []).map((p) => p.split(':').map(Number));
          const containerPorts = mappings.map((m) => m[m.length - 1]);
          expect(containerPorts).to.have.members([config.port, config.wsPort, config.opsPort]);
        });

        it('gets more time to stop than the drain and the close take', () => {
          const config = loadConfig({ env: inContainer });
          const grace = durationMs(service.stop_grace_period ?? '10s');
          expect(grace).to.be.greaterThan(config.shutdownDrainMs + config.closeTimeoutMs);
        });

        it('reaches its engines by compose service names it depends on', () => {
          const config = loadConfig({ env: inContainer });
          const hosts = [
            new URL(config.redis).hostname,
            new URL(config.mongo).hostname,
            ...config.kafka.split(',').map((b) => b.split(':')[0] as string),
          ];
          const dependsOn = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
          for (const host of hosts) {
            expect(Object.keys(compose.services), `${host} is a compose service`).to.include(host);
            expect(dependsOn, `${name} depends on ${host}`).to.include(host);
          }
        });
      });
    }

    it('publishes TCP 61613/61623/61633, WebSocket 15674/15684/15694 and ops 15692/15702/15712 on the host', () => {
      const hostPorts = nodes.map(([, s]) => (s.ports ?? []).map((p) => Number(p.split(':')[0])));
      expect(hostPorts).to.deep.equal([
        [61613, 15674, 15692],
        [61623, 15684, 15702],
        [61633, 15694, 15712],
      ]);
    });

    /** The named volume mounted at `path` in a service, if any. */
    function namedVolumeAt(service: ComposeService | undefined, path: string): string | undefined {
      const mount = (service?.volumes ?? []).find((v) => v.split(':')[1] === path);
      const name = mount?.split(':')[0];
      return name !== undefined && Object.keys(compose.volumes ?? {}).includes(name) ? name : undefined;
    }

    it('keeps Kafka, Redis and MongoDB data in named volumes, one each, so down/up keeps them together', () => {
      const { kafka, redis, mongo } = compose.services;
      const kafkaDir = environment(kafka ?? {}).KAFKA_LOG_DIRS;
      expect(kafkaDir, 'KAFKA_LOG_DIRS names the mounted directory').to.be.a('string');
      const volumes = [namedVolumeAt(kafka, kafkaDir as string), namedVolumeAt(redis, '/data'), namedVolumeAt(mongo, '/data/db')];
      expect(
        volumes.every((v) => v !== undefined),
        `named volumes: ${volumes.join(', ')}`,
      ).to.equal(true);
      expect(new Set(volumes).size).to.equal(3);
      expect(environment(kafka ?? {}).CLUSTER_ID, 'a fixed KRaft cluster id, so the formatted volume is reused').to.match(/^[\w-]{22}$/);
    });

    it('runs Redis with the append-only file on', () => {
      const command = compose.services.redis?.command;
      const words = Array.isArray(command) ? command : (command ?? '').split(/\s+/);
      expect(words[0]).to.equal('redis-server');
      expect(words.slice(words.indexOf('--appendonly'), words.indexOf('--appendonly') + 2)).to.deep.equal(['--appendonly', 'yes']);
    });

    it("lets Kafka accept the nodes' short consumer session (group.min.session.timeout.ms)", () => {
      const min = Number(environment(compose.services.kafka ?? {}).KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS ?? 6000);
      for (const [name, service] of nodes) {
        const config = loadConfig({ env: { ...IMAGE_ENV, ...environment(service) } });
        expect(min, `${name}: kafkaSessionTimeoutMs ${config.kafkaSessionTimeoutMs}`).to.be.at.most(config.kafkaSessionTimeoutMs);
        expect(min, 'short enough for a failover in seconds').to.be.at.most(3000);
      }
    });

    it('runs Kafka in KRaft mode from apache/kafka, Redis, and MongoDB 7', () => {
      const { kafka, redis, mongo } = compose.services;
      expect(kafka?.image).to.match(/^apache\/kafka:/);
      expect(environment(kafka ?? {}).KAFKA_PROCESS_ROLES).to.equal('broker,controller');
      expect(environment(kafka ?? {}).KAFKA_ADVERTISED_LISTENERS).to.equal('PLAINTEXT://kafka:9092');
      expect(redis?.image).to.match(/^redis:/);
      expect(mongo?.image).to.equal('mongo:7');
    });
  });
});
