/**
 * README.md's "## Bridge your existing Kafka and Redis", run as it is written (issue #7): the node command starts a
 * real node on the test Kafka and Redis, `bridge.mjs` runs in a fresh `npm init -y` project, and the `redis-cli`
 * line runs in a shell while it does. Only addresses and ports are replaced: `127.0.0.1:9092` and
 * `redis://127.0.0.1:6379` by the test services', 61613 and 15674 by the node's. Before the run, the blocks are read
 * for what the prose promises: a kafka route and a redis `format=raw` route from the command, a snippet that
 * receives (never sends) over STOMP what a plain kafkajs producer wrote to the topic its destination maps to, a
 * PUBLISH on the channel another of its destinations maps to, and the lines the README says it prints.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { effectiveRoutes, parseRoutes, routeFormat, RouteTable, targetFor } from '../../broker/ports/routes.js';
import { uniqueRunName } from '../support/cluster.js';
import { requireService, requireServices } from '../support/services.js';
import { waitQuiet } from '../support/timing.js';
import { cliEnv, RunningCli } from '../ops/cli.js';
import {
  README,
  describeRun,
  fencedBlocks,
  freshNpmProject,
  nonBlankLines,
  runSnippet,
  section,
  shellLines,
  shellWords,
  stompedeCommands,
  withPorts,
  type Block,
} from './readme-text.js';

const HEADING = 'Bridge your existing Kafka and Redis';
/** The addresses the README gives for "your" Kafka and Redis, replaced by the test services'. */
const README_KAFKA = '127.0.0.1:9092';
const README_REDIS = 'redis://127.0.0.1:6379';
/** How long the snippet has for each line: its first run creates the topic and makes the node re-join its group. */
const LINE_MS = 30_000;

/** What the README's three blocks say, read once. */
interface Bridge {
  /** The stompede arguments of the node command. */
  readonly nodeArgs: string[];
  readonly table: RouteTable;
  readonly snippet: Block;
  /** The file name the README saves the snippet as. */
  readonly file: string;
  /** `producer.send({ topic, messages: [{ key, value }] })` of the snippet. */
  readonly record: { topic: string; key: string; value: string };
  /** The destinations the snippet subscribes to. */
  readonly subscribed: string[];
  /** The `redis-cli … PUBLISH channel message` line, its words, and its intro. */
  readonly publish: { line: string; url: string; channel: string; message: string; intro: string };
}

/** The text of `` prints `X` `` (or `` print `X` ``) in a block's intro. */
function printsIn(intro: string): string | undefined {
  return /\bprints?\s+`([^`]+)`/.exec(intro)?.[1];
}

function readBridge(): Bridge {
  const blocks = fencedBlocks(section(README, HEADING));
  expect(
    blocks.map((b) => [b.lang, b.label]),
    'a node command, the kafkajs snippet, the redis-cli line',
  ).to.deep.equal([
    ['sh', ''],
    ['js', 'kafkajs to STOMP'],
    ['sh', 'redis-cli to STOMP'],
  ]);
  const [command, snippet, redis] = blocks as [Block, Block, Block];

  const commands = shellLines(command.code).flatMap((l) => stompedeCommands(l, true));
  expect(commands, command.code).to.have.length(1);
  const nodeArgs = (commands[0] as { args: string[] }).args;
  const value = (flag: string): string => {
    const at = nodeArgs.indexOf(flag);
    expect(at, `${flag} in: ${command.code}`).to.be.at.least(0);
    return nodeArgs[at + 1] as string;
  };
  expect([value('--kafka'), value('--redis')], 'the Kafka and Redis the README stands for').to.deep.equal([README_KAFKA, README_REDIS]);
  const table = new RouteTable(effectiveRoutes(parseRoutes(value('--routes')), { redis: true, kafka: true }));

  const file = /saved as `([\w.-]+\.mjs)`/.exec(snippet.intro)?.[1];
  expect(file, `an .mjs file name in: ${snippet.intro}`).to.be.a('string');
  const installed = /`npm install ([^`]+)`/.exec(snippet.intro)?.[1]?.split(/\s+/) ?? [];
  const imported = [...snippet.code.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1] as string);
  expect(imported, 'a plain kafkajs producer and a STOMP client').to.include.members(['kafkajs', '@stomp/stompjs']);
  expect(installed, 'npm install names every package the snippet imports').to.include.members(imported);
  expect(snippet.code, 'the message reaches STOMP from Kafka and Redis only: the snippet never publishes').to.not.match(/\.publish\(/);
  const send = /producer\.send\(\{ topic: '([^']+)', messages: \[\{ key: '([^']+)', value: '([^']+)' \}\] \}\)/.exec(snippet.code);
  expect(send, 'one record sent by producer.send').to.not.equal(null);
  const [, topic, key, recordValue] = send as unknown as [string, string, string, string];
  const subscribed = [...snippet.code.matchAll(/\.subscribe\('([^']+)'/g)].map((m) => m[1] as string);

  const lines = nonBlankLines(redis.code);
  expect(lines, 'one redis-cli line').to.have.length(1);
  const words = shellWords(lines[0] as string);
  expect([words[0], words[1], words[3], words.length], lines[0]).to.deep.equal(['redis-cli', '-u', 'PUBLISH', 6]);
  const publish = {
    line: lines[0] as string,
    url: words[2] as string,
    channel: words[4] as string,
    message: words[5] as string,
    intro: redis.intro,
  };
  expect(publish.url, 'redis-cli talks to the Redis of the node command').to.equal(README_REDIS);

  return { nodeArgs, table, snippet, file: file as string, record: { topic, key, value: recordValue }, subscribed, publish };
}

/** The destination of `subscribed` that `table` routes to `target` on an engine of `kind`, in `format`. */
function mappedTo(bridge: Bridge, kind: 'kafka' | 'redis', target: string, format: string): string | undefined {
  return bridge.subscribed.find((d) => {
    const route = bridge.table.route(d);
    return route.kind === kind && routeFormat(route) === format && targetFor(route, d) === target;
  });
}

/** A Node program left running; its stdout lines can be waited for. */
class Program {
  stdout = '';
  stderr = '';
  readonly #child: ChildProcess;
  readonly #closed: Promise<void>;

  constructor(file: string, cwd: string) {
    this.#child = spawn(process.execPath, [file], { cwd, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.stdout?.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.#child.stderr?.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.#closed = new Promise((done) => this.#child.on('close', () => done()));
  }

  get lines(): string[] {
    return nonBlankLines(this.stdout);
  }

  async waitForLine(line: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.includes(line)) {
      if (this.#child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no line "${line}" (exit ${String(this.#child.exitCode)}); stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    await this.#closed;
  }
}

describe(`docs › README.md › ## ${HEADING}`, function () {
  this.timeout(120_000);

  it('routes a Kafka topic to a destination by template and a Redis channel to one in format=raw, as the prose says', () => {
    const bridge = readBridge();
    const kafkaDestination = mappedTo(bridge, 'kafka', bridge.record.topic, 'native');
    const redisDestination = mappedTo(bridge, 'redis', bridge.publish.channel, 'raw');
    expect(kafkaDestination, `a subscribed destination on Kafka topic ${bridge.record.topic} (native records)`).to.be.a('string');
    expect(redisDestination, `a subscribed destination on Redis channel ${bridge.publish.channel} (raw)`).to.be.a('string');
    const kafkaRoute = bridge.table.route(kafkaDestination as string);
    expect(kafkaRoute.target, `${kafkaRoute.pattern} maps many topics, one per destination`).to.match(/\{1\}/);
    expect(bridge.table.route(redisDestination as string).target).to.match(/\{1\}/);
    const prose = section(README, HEADING).replace(/^```[\s\S]*?^```$/gm, '');
    for (const name of [bridge.record.topic, kafkaDestination, bridge.publish.channel, redisDestination])
      expect(prose, `the prose names ${String(name)}`).to.include(String(name));
    expect(printsIn(bridge.snippet.intro), 'what the snippet prints: the record key and value').to.equal(
      `${bridge.record.key} ${bridge.record.value}`,
    );
    expect(printsIn(bridge.publish.intro), 'what the redis-cli line makes it print: the payload').to.equal(bridge.publish.message);
  });

  it('runs them as written: the snippet prints the kafkajs record, then the redis-cli PUBLISH, each once', async () => {
    requireServices(['kafka', 'redis']);
    const bridge = readBridge();
    const kafka = (requireService('kafka').split(',')[0] as string).trim();
    const redis = requireService('redis');
    const args = bridge.nodeArgs.map((a) => (a === README_KAFKA ? kafka : a === README_REDIS ? redis : a));
    // A cluster name of its own: a new consumer group, which takes records of earlier runs as history only.
    const node = new RunningCli(args, { STOMPEDE_PORT: '0', STOMPEDE_WS_PORT: '0', STOMPEDE_CLUSTER_NAME: uniqueRunName('readme') });
    let cwd = '';
    let program: Program | undefined;
    try {
      const listening = (await node.waitForLog((l) => typeof l.tcp === 'object' && typeof l.ws === 'object', 60_000)) as {
        tcp: { port: number };
        ws: { port: number };
      };
      cwd = await freshNpmProject();
      const code = withPorts(bridge.snippet.code, String(listening.tcp.port), String(listening.ws.port)).replaceAll(README_KAFKA, kafka);
      writeFileSync(join(cwd, bridge.file), code);
      program = new Program(bridge.file, cwd);
      const fromKafka = `${bridge.record.key} ${bridge.record.value}`;
      await program.waitForLine(fromKafka, LINE_MS);

      // PUBLISH answers how many subscribers got it: 0 only while the node's SUBSCRIBE to the channel is on its way.
      const line = bridge.publish.line.replaceAll(README_REDIS, redis);
      let receivers = 0;
      for (const deadline = Date.now() + 10_000; receivers === 0 && Date.now() < deadline;) {
        const r = await runSnippet('bash', ['-c', line], { cwd, until: '', untilExit: true });
        expect(r.code, describeRun(r)).to.equal(0);
        receivers = Number(r.stdout.trim());
        if (receivers === 0) await new Promise((done) => setTimeout(done, 100));
      }
      expect(receivers, `${line}: subscribers that got it (the node)`).to.be.at.least(1);
      await program.waitForLine(bridge.publish.message, LINE_MS);
      await waitQuiet();
      expect(program.lines, `stdout of ${bridge.file}`).to.deep.equal([fromKafka, bridge.publish.message]);
    } finally {
      await program?.stop();
      await node.stop();
      if (cwd !== '') rmSync(cwd, { recursive: true, force: true });
    }
  });
});
