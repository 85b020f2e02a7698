/**
 * Helpers of the ops specs: plain HTTP requests to a broker's WebSocket or ops port, and a reader of the Prometheus
 * text format that keys each sample by its name and sorted labels, so a spec can diff two scrapes.
 */
import { request } from 'node:http';
import type { TestBroker } from '../support/broker.js';

export interface HttpReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** One request to `path` on a port of the broker (WebSocket or ops). */
export function http(port: number, path: string, method = 'GET'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function wsPort(b: TestBroker): number {
  const ws = b.addresses.ws;
  if (ws === undefined) throw new Error('the test broker has no WebSocket listener');
  return ws.port;
}

/** Samples of a Prometheus text exposition: `name{a="1",b="2"}` (labels sorted) → value. */
export type Samples = Map<string, number>;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function sampleKey(name: string, labels: Readonly<Record<string, string>> = {}): string {
  const list = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return list.length === 0 ? name : `${name}{${list.map(([k, v]) => `${k}="${v}"`).join(',')}}`;
}

export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (m === null) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = l[2] as string;
    samples.set(sampleKey(m[1] as string, labels), Number(m[3]));
  }
  return samples;
}

/** The `# TYPE` of every metric family in a text exposition. */
export function metricTypes(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1] as string, m[2] as string);
  return types;
}

export async function scrape(port: number): Promise<{ text: string; samples: Samples }> {
  const reply = await http(port, '/metrics');
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.body}`);
  return { text: reply.body, samples: parseSamples(reply.body) };
}

/** `after - before` for one sample; a sample missing from a scrape counts as 0. */
export function delta(before: Samples, after: Samples, name: string, labels: Readonly<Record<string, string>> = {}): number {
  const key = sampleKey(name, labels);
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}
