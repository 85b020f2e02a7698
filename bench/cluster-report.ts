// The table of bench/cluster.sh: one row per scenario and setup (route × nodes), medians over runs, with the
// issue's targets checked where one applies.
//
//   node dist/bench/cluster-report.js bench/results/cluster-<time>/*.json

import { readFileSync } from 'node:fs';
import { SCENARIOS, type BenchResult } from './scenarios.js';

function isResult(v: unknown): v is BenchResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.label === 'string' && typeof r.scenario === 'string' && typeof r.rate === 'number';
}

function median(values: ReadonlyArray<number | null | undefined>): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  const hi = xs[mid] ?? 0;
  return xs.length % 2 === 1 ? hi : ((xs[mid - 1] ?? hi) + hi) / 2;
}

function range(values: ReadonlyArray<number | null>, fmt: (v: number) => string): string {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (xs.length < 2) return '';
  return ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

function int(v: number | null): string {
  return v === null ? '–' : Math.round(v).toLocaleString('en-US');
}

function ms(v: number | null): string {
  if (v === null) return '–';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The issue's targets: [label, scenario] → check on the medians. */
interface Target {
  readonly label: string;
  readonly scenario: string;
  readonly text: string;
  check(rate: number, p99: number, lost: number): boolean;
}
const TARGETS: readonly Target[] = [
  { label: 'redis ×3', scenario: 'chat', text: 'p99 ≤ 10 ms, no loss', check: (_r, p99, lost) => p99 <= 10 && lost === 0 },
  { label: 'kafka ×3', scenario: 'chat', text: 'p99 ≤ 50 ms, no loss', check: (_r, p99, lost) => p99 <= 50 && lost === 0 },
  { label: 'kafka ×1', scenario: 'receipts', text: '≥ 20,000 receipts/s', check: (rate) => rate >= 20_000 },
];

const SETUP_ORDER = ['local ×1', 'redis ×3', 'kafka ×3', 'redis ×1', 'kafka ×1'];

function main(): void {
  const results: BenchResult[] = [];
  for (const file of process.argv.slice(2)) {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (isResult(parsed)) results.push(parsed);
    else process.stderr.write(`skipping ${file}: not a bench result\n`);
  }
  const labels = [...new Set(results.map((r) => r.label))].sort((a, b) => {
    const ia = SETUP_ORDER.indexOf(a);
    const ib = SETUP_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const head = [
    'scenario',
    'route × nodes',
    'rate',
    'unit',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'loss+dup',
    'broker CPU (sum)',
    'client CPU',
    'target',
    'runs',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 || i === 3 || i === 10 ? '---' : '--:')).join('|')}|`];
  for (const scenario of SCENARIOS) {
    for (const label of labels) {
      const rs = results.filter((r) => r.scenario === scenario && r.label === label);
      if (rs.length === 0) continue;
      const rate = median(rs.map((r) => r.rate));
      const p50 = median(rs.map((r) => r.p50Ms));
      const p99 = median(rs.map((r) => r.p99Ms));
      const p999 = median(rs.map((r) => r.p999Ms));
      const lost = median(rs.map((r) => r.lost));
      const dup = median(rs.map((r) => r.duplicates));
      const cpu = median(rs.map((r) => r.brokerCpuPercent));
      const client = median(rs.map((r) => r.clientCpuPercent));
      const maxLost = Math.max(...rs.map((r) => r.lost));
      const target = TARGETS.find((t) => t.label === label && t.scenario === scenario);
      let targetCell = '';
      if (target) {
        // Every run must meet it, not just the median.
        const met = rs.every((r) => target.check(r.rate, r.p99Ms ?? Number.POSITIVE_INFINITY, r.lost));
        const some = rs.some((r) => target.check(r.rate, r.p99Ms ?? Number.POSITIVE_INFINITY, r.lost));
        targetCell = `${target.text}: **${met ? 'met' : some ? 'met in some runs' : 'missed'}**`;
      }
      const errors = median(rs.map((r) => r.errors)) ?? 0;
      const cells = [
        scenario,
        label,
        `${int(rate)}${range(
          rs.map((r) => r.rate),
          int,
        )}`,
        rs[0]?.rateUnit ?? '',
        ms(p50),
        `${ms(p99)}${range(
          rs.map((r) => r.p99Ms),
          ms,
        )}`,
        ms(p999),
        `${int(lost)}+${int(dup)}${maxLost > 0 && rs.length > 1 ? ` (max ${maxLost})` : ''}${errors > 0 ? `, ${int(errors)} errors` : ''}`,
        cpu === null ? '–' : `${Math.round(cpu)}%`,
        client === null ? '–' : `${Math.round(client)}%`,
        targetCell,
        String(rs.length),
      ];
      lines.push(`| ${cells.join(' | ')} |`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
