// Turns the JSON results of bench/run.ts into one comparison table: medians over repeated runs, absolute
// figures for each broker, and ratios of the first label to the second (e.g. stompede / rabbitmq).
//
//   node dist/bench/report.js --labels stompede,rabbitmq bench/results/<run>/*.json

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SCENARIOS, type BenchResult } from './scenarios.js';

interface Summary {
  readonly runs: number;
  readonly unit: string;
  readonly rate: number | null;
  readonly perCpu: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly p999: number | null;
  readonly lost: number | null;
  readonly dup: number | null;
  readonly cpu: number | null;
  /** The load generator's own CPU (all its threads), % of one core. */
  readonly clientCpu: number | null;
  readonly rssPerConn: number | null;
  readonly errors: number | null;
}

function isResult(v: unknown): v is BenchResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.label === 'string' && typeof r.scenario === 'string' && typeof r.transport === 'string' && typeof r.rate === 'number';
}

function median(values: ReadonlyArray<number | null>): number | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  const hi = xs[mid] ?? 0;
  return xs.length % 2 === 1 ? hi : ((xs[mid - 1] ?? hi) + hi) / 2;
}

/**
 * The median of per-run ratios a/b, pairing the i-th run of each broker in time order. compare.sh runs the two
 * brokers back to back, so each pair saw about the same machine load: steadier than a ratio of medians.
 */
function pairedRatio(as: readonly BenchResult[], bs: readonly BenchResult[], value: (r: BenchResult) => number | null): number | null {
  const byTime = (x: BenchResult, y: BenchResult): number => x.startedAt.localeCompare(y.startedAt);
  const sa = [...as].sort(byTime);
  const sb = [...bs].sort(byTime);
  const ratios: Array<number | null> = [];
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i];
    const y = sb[i];
    const vx = x ? value(x) : null;
    const vy = y ? value(y) : null;
    ratios.push(vx !== null && vy !== null && vy !== 0 ? vx / vy : null);
  }
  return median(ratios);
}

function summarize(results: readonly BenchResult[]): Summary {
  return {
    runs: results.length,
    unit: results[0]?.rateUnit ?? '',
    rate: median(results.map((r) => r.rate)),
    perCpu: median(results.map((r) => r.perBrokerCpuSecond ?? null)),
    p50: median(results.map((r) => r.p50Ms)),
    p99: median(results.map((r) => r.p99Ms)),
    p999: median(results.map((r) => r.p999Ms)),
    lost: median(results.map((r) => r.lost)),
    dup: median(results.map((r) => r.duplicates)),
    cpu: median(results.map((r) => r.brokerCpuPercent)),
    clientCpu: median(results.map((r) => r.clientCpuPercent)),
    rssPerConn: median(results.map((r) => r.rssPerConnKiB)),
    errors: median(results.map((r) => r.errors)),
  };
}

function num(v: number | null, digits = 0): string {
  if (v === null) return '–';
  if (digits === 0) return Math.round(v).toLocaleString('en-US');
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(digits);
}

function times(r: number | null): string {
  return r === null ? '–' : `${r.toFixed(2)}×`;
}

function main(): void {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { labels: { type: 'string' } },
  });
  const results: BenchResult[] = [];
  for (const file of positionals) {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (isResult(parsed)) results.push(parsed);
    else process.stderr.write(`skipping ${file}: not a bench result\n`);
  }
  const seen = [...new Set(results.map((r) => r.label))];
  const labels = values.labels ? values.labels.split(',') : seen;
  const [a, b] = labels;
  if (a === undefined) {
    process.stderr.write('usage: node dist/bench/report.js [--labels subject,baseline] result.json...\n');
    process.exit(2);
  }
  const lines: string[] = [];
  const both = b !== undefined;
  const head = both
    ? [
        `scenario`,
        `transport`,
        `unit`,
        `${a}`,
        `${b}`,
        `${a}/${b}`,
        `per broker CPU-s ${a}/${b}`,
        `p50 ms ${a} / ${b}`,
        `p99 ms ${a} / ${b}`,
        `p99 ${a}/${b}`,
        `p99.9 ms ${a} / ${b}`,
        `loss+dup ${a} / ${b}`,
        `broker CPU ${a} / ${b}`,
        `client CPU ${a} / ${b}`,
        `notes`,
        `runs`,
      ]
    : [
        `scenario`,
        `transport`,
        `unit`,
        `${a}`,
        `per broker CPU-s`,
        `p50 ms`,
        `p99 ms`,
        `p99.9 ms`,
        `loss+dup`,
        `broker CPU`,
        `client CPU`,
        `notes`,
        `runs`,
      ];
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`|${head.map((_, i) => (i < 3 || i === head.length - 2 ? '---' : '--:')).join('|')}|`);
  const transports = ['tcp', 'ws'] as const;
  for (const scenario of SCENARIOS) {
    for (const transport of transports) {
      const select = (label: string): BenchResult[] =>
        results.filter((r) => r.label === label && r.scenario === scenario && r.transport === transport);
      const ra = select(a);
      const rb = b === undefined ? [] : select(b);
      const sa = ra.length > 0 ? summarize(ra) : undefined;
      const sb = rb.length > 0 ? summarize(rb) : undefined;
      const ratio = (value: (r: BenchResult) => number | null): string => times(pairedRatio(ra, rb, value));
      if (!sa && !sb) continue;
      const unit = sa?.unit ?? sb?.unit ?? '';
      const lossDup = (s: Summary | undefined): string => (s ? `${num(s.lost)}+${num(s.dup)}` : '–');
      const cpu = (s: Summary | undefined): string => (s === undefined || s.cpu === null ? '–' : `${Math.round(s.cpu)}%`);
      const clientCpu = (s: Summary | undefined): string => {
        const v = s?.clientCpu ?? null;
        return v === null ? '–' : `${Math.round(v)}%`;
      };
      const notes: string[] = [];
      if (scenario === 'conns') {
        notes.push(`KiB/conn ${num(sa?.rssPerConn ?? null, 1)}${both ? ` / ${num(sb?.rssPerConn ?? null, 1)}` : ''}`);
        notes.push('latency = connect');
      }
      const errs = [sa?.errors ?? 0, sb?.errors ?? 0];
      if (errs.some((e) => e > 0)) notes.push(`errors ${errs.map((e) => num(e)).join(' / ')}`);
      const runs = both ? `${sa?.runs ?? 0} / ${sb?.runs ?? 0}` : `${sa?.runs ?? 0}`;
      const cells = both
        ? [
            scenario,
            transport,
            unit,
            num(sa?.rate ?? null),
            num(sb?.rate ?? null),
            ratio((r) => r.rate),
            ratio((r) => r.perBrokerCpuSecond ?? null),
            `${num(sa?.p50 ?? null, 2)} / ${num(sb?.p50 ?? null, 2)}`,
            `${num(sa?.p99 ?? null, 2)} / ${num(sb?.p99 ?? null, 2)}`,
            ratio((r) => r.p99Ms),
            `${num(sa?.p999 ?? null, 2)} / ${num(sb?.p999 ?? null, 2)}`,
            `${lossDup(sa)} / ${lossDup(sb)}`,
            `${cpu(sa)} / ${cpu(sb)}`,
            `${clientCpu(sa)} / ${clientCpu(sb)}`,
            notes.join('; '),
            runs,
          ]
        : [
            scenario,
            transport,
            unit,
            num(sa?.rate ?? null),
            num(sa?.perCpu ?? null),
            num(sa?.p50 ?? null, 2),
            num(sa?.p99 ?? null, 2),
            num(sa?.p999 ?? null, 2),
            lossDup(sa),
            cpu(sa),
            clientCpu(sa),
            notes.join('; '),
            runs,
          ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
