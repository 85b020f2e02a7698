// The folders' dependency rules (docs/ARCHITECTURE.md): every arrow points one way, and `npm run lint` fails on a
// violation. Type-only imports count: a cycle through types still ties the modules' designs together.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycle anywhere: each module can be understood (and tested) from what it imports.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'frames-stands-alone',
      severity: 'error',
      comment: 'frames/ is the STOMP codec: it imports only frames/ and node builtins, never a socket or a broker.',
      from: { path: '^frames/' },
      to: { pathNot: '^frames/', dependencyTypesNot: ['core'] },
    },
    {
      name: 'bridge-sees-only-ports',
      severity: 'error',
      comment: 'bridge/ implements the interfaces the core consumes; from broker/ it may import broker/ports/ only.',
      from: { path: '^bridge/' },
      to: { path: '^broker/', pathNot: '^broker/ports/' },
    },
    {
      name: 'core-does-not-know-adapters',
      severity: 'error',
      comment: 'broker/ depends on ports, not on their implementations; only the composition root broker/server.ts wires bridge/ in.',
      from: { path: '^broker/', pathNot: '^broker/server\\.ts$' },
      to: { path: '^bridge/' },
    },
    {
      name: 'tests-and-bench-are-leaves',
      severity: 'error',
      comment: 'Nothing ships that imports test or benchmark code; spec/ and bench/ may import each other.',
      from: { pathNot: '^(spec|bench)/' },
      to: { path: '^(spec|bench)/' },
    },
    {
      name: 'resolvable',
      severity: 'error',
      comment: 'An import the resolver cannot find is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|\\.cache|\\.services)/' },
    // Keep `import type` edges: they are real design dependencies (see the top of this file).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
