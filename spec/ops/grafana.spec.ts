/**
 * Issue #9 item 2: the Grafana dashboard (ops/grafana/stompede.json) queries only metrics a running node exports,
 * and shows every per-queue series. A renamed metric breaks this spec, not an operator's dashboard.
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBroker, type TestBroker } from '../support/broker.js';
import { metricTypes } from './http.js';
import { REPO } from './repo.js';

interface Target {
  readonly expr?: unknown;
}
interface Panel {
  readonly title?: unknown;
  readonly type?: unknown;
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
}

/** Every PromQL expression of the dashboard: panel targets (rows included) and template variable queries. */
function expressions(dashboard: { panels?: readonly Panel[]; templating?: { list?: readonly { query?: unknown }[] } }): string[] {
  const out: string[] = [];
  const walk = (panels: readonly Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        expect(t.expr, `panel "${String(p.title)}"`)
          .to.be.a('string')
          .and.not.equal('');
        out.push(t.expr as string);
      }
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels ?? []);
  for (const v of dashboard.templating?.list ?? []) if (typeof v.query === 'string' && v.query.includes('(')) out.push(v.query);
  return out;
}

/** Metric names in PromQL: our families (stompede_*) and prom-client's process metrics (process_*, nodejs_*). */
const METRIC = /\b((?:stompede|process|nodejs)_[a-zA-Z0-9_]+)\b/g;
/** Any identifier directly followed by a selector `{`: must be one of the names above, so none slips past. */
const SELECTED = /([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g;

describe('ops › Grafana dashboard (ops/grafana/stompede.json)', function () {
  this.timeout(30_000);
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ opsPort: 0 });
  });
  after(() => b.close());

  it('queries only metric names that a running node exports, and shows every per-queue series', async () => {
    const dashboard = JSON.parse(await readFile(join(REPO, 'ops/grafana/stompede.json'), 'utf8')) as Parameters<typeof expressions>[0];
    const exprs = expressions(dashboard);
    expect(exprs.length).to.be.greaterThan(10);
    const used = new Set<string>();
    for (const e of exprs) {
      for (const m of e.matchAll(METRIC)) used.add(m[1] as string);
      for (const m of e.matchAll(SELECTED)) expect(m[1], `in ${e}`).to.match(/^(?:stompede|process|nodejs)_/);
    }
    const reply = await fetch(`http://127.0.0.1:${b.addresses.ops?.port ?? 0}/metrics`);
    const types = metricTypes(await reply.text());
    const missing = [...used].filter((name) => {
      if (types.has(name)) return false;
      // A histogram's series are <family>_bucket, _sum and _count.
      const family = name.replace(/_(?:bucket|sum|count)$/, '');
      return !(family !== name && types.get(family) === 'histogram');
    });
    expect(missing, 'queried by the dashboard but not exported').to.deep.equal([]);
    const perQueue = [...types.keys()].filter((name) => name.startsWith('stompede_queue_'));
    expect(perQueue.length).to.be.at.least(7);
    expect(
      perQueue.filter((name) => !used.has(name)),
      'per-queue series missing from the dashboard',
    ).to.deep.equal([]);
  });
});
