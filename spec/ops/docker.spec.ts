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

/** The long flags `stompede --help` lists. */
async function cliFlags(): Promise<Set<string>> {
  const help = await runCli(['--help']);
  return new Set([...help.stdout.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
}

interface ComposeService {
  build?: unknown;
  image?: string;
  environment?: Record<string, string | number> | string[];
  ports?: string[];
  depends_on?: Record<string, unknown> | string[];
}

const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const steps = instructions(dockerfile);
const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
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
      const froms = steps.filter((s) => s.name === 'FROM');
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

    it('exposes exactly the default TCP and WebSocket ports', () => {
      const exposed = steps
        .filter((s) => s.name === 'EXPOSE')
        .flatMap((s) => s.args.split(/\s+/))
        .map((p) => Number(p.replace(/\/tcp$/, '')));
      expect(exposed).to.have.members([DEFAULT_CONFIG.port, DEFAULT_CONFIG.wsPort]);
      expect(exposed).to.have.length(2);
    });

    it('starts the CLI with real flags, listening on every interface', async () => {
      const entrypoint = execForm(steps.find((s) => s.name === 'ENTRYPOINT')?.args ?? '[]');
      const cmd = execForm(steps.find((s) => s.name === 'CMD')?.args ?? '[]');
      expect(entrypoint.slice(0, 2)).to.deep.equal(['node', 'dist/bin/stompede.js']);
      const args = [...entrypoint.slice(2), ...cmd];
      const flags = await cliFlags();
      for (const a of args.filter((x) => x.startsWith('--'))) expect(flags.has(a), `${a} is a flag of stompede --help`).to.equal(true);
      const r = await runCli([...args, '--print-config']);
      expect(r.code, r.stderr).to.equal(0);
      expect((JSON.parse(r.stdout) as BrokerConfig).host).to.equal('0.0.0.0');
    });

    it('has a HEALTHCHECK, in node, that passes against a live broker and fails when nothing answers', async () => {
      const check = execForm(steps.find((s) => s.name === 'HEALTHCHECK')?.args ?? '[]');
      expect(check[0], 'no curl in slim images: node runs the check').to.equal('node');
      expect(check.join(' ')).to.include('/healthz');
      const b = await startBroker();
      try {
        const ok = await runNode(check.slice(1), { STOMPEDE_WS_PORT: String(wsPort(b)) }, 10_000);
        expect(ok.code, ok.stderr).to.equal(0);
      } finally {
        await b.close();
      }
      const down = await runNode(check.slice(1), { STOMPEDE_WS_PORT: String(await freePort()) }, 10_000);
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

        it('sets only STOMPEDE_* variables that are config keys, with values the CLI accepts', () => {
          const stompede = Object.keys(env).filter((k) => k.startsWith('STOMPEDE_'));
          expect(
            stompede.filter((k) => !known.has(k)),
            'unknown STOMPEDE_* variables',
          ).to.deep.equal([]);
          expect(() => loadConfig({ env })).to.not.throw();
        });

        it('maps host ports to the ports the node is configured with', () => {
          const config = loadConfig({ env });
          const mappings = (service.ports ?? []).map((p) => p.split(':').map(Number));
          const containerPorts = mappings.map((m) => m[m.length - 1]);
          expect(containerPorts).to.have.members([config.port, config.wsPort]);
        });

        it('reaches its engines by compose service names it depends on', () => {
          const config = loadConfig({ env });
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

    it('publishes TCP 61613/61623/61633 and WebSocket 15674/15684/15694 on the host', () => {
      const hostPorts = nodes.map(([, s]) => (s.ports ?? []).map((p) => Number(p.split(':')[0])));
      expect(hostPorts).to.deep.equal([
        [61613, 15674],
        [61623, 15684],
        [61633, 15694],
      ]);
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
