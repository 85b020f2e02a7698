/**
 * The shape of broker/ (issue #10 item 1), read from the sources: transports know only connection.ts, a Session
 * knows the broker only as a SessionHost, the HTTP handlers take what they read as parameters, and the import
 * graph of broker/ has no cycle, type-only imports included. Only server.ts (the composition root) wires
 * listeners to a Broker.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO } from '../ops/repo.js';

const BROKER = join(REPO, 'broker');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Relative imports and re-exports of a file, `import type` included, as paths relative to broker/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)) {
    const target = resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'));
    found.push(relative(BROKER, target));
  }
  return found;
}

const graph = new Map(sources(BROKER).map((f) => [relative(BROKER, f), importsOf(f)]));

function importsOfModule(name: string): string[] {
  const edges = graph.get(name);
  if (edges === undefined) throw new Error(`no broker/${name}`);
  return edges;
}

describe('broker › seams (issue #10: a core without sockets)', () => {
  it('reads the import graph (a self-check of the parser)', () => {
    expect(importsOfModule('server.ts')).to.include.members(['broker.ts', 'http.ts', 'transports/listen.ts']);
  });

  it('has transports that import connection.ts and each other, never a session or the broker', () => {
    for (const name of ['transports/tcp.ts', 'transports/websocket.ts', 'transports/listen.ts']) {
      const inside = importsOfModule(name).filter((t) => !t.startsWith('..'));
      // listen.ts reads config.ts for its settings' names (error messages) and its types.
      const allowed = ['connection.ts', 'config.ts', 'transports/tcp.ts', 'transports/websocket.ts'];
      expect(
        inside.filter((t) => !allowed.includes(t)),
        name,
      ).to.deep.equal([]);
    }
  });

  it('keeps session.ts, http.ts, metrics.ts and web.ts off broker.ts and server.ts', () => {
    for (const name of ['session.ts', 'http.ts', 'metrics.ts', 'web.ts']) {
      const edges = importsOfModule(name);
      expect(edges, name).to.not.include('broker.ts');
      expect(edges, name).to.not.include('server.ts');
    }
  });

  it('lets nothing in broker/ but index.ts import server.ts (the composition root)', () => {
    const importers = [...graph].filter(([, edges]) => edges.includes('server.ts')).map(([name]) => name);
    expect(importers).to.deep.equal(['index.ts']);
  });

  it('has no import cycle inside broker/', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (name: string, path: string[]): void => {
      if (state.get(name) === 'done') return;
      if (state.get(name) === 'open') {
        cycles.push([...path.slice(path.indexOf(name)), name].join(' > '));
        return;
      }
      state.set(name, 'open');
      for (const next of graph.get(name) ?? []) if (graph.has(next)) visit(next, [...path, name]);
      state.set(name, 'done');
    };
    for (const name of graph.keys()) visit(name, []);
    expect(cycles).to.deep.equal([]);
  });
});
