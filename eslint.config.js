// ESLint for the whole tree: typescript-eslint with type information, tuned to find defects (lost promises,
// loose equality, unsafe `any` flows) rather than to restyle code; formatting is Prettier's job (.prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.cache/**',
      '.cluster/**',
      '.services/**',
      'bench/results/**',
      'spec/artifacts/**',
      'interop/spring/target/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Each file is checked with its own tsconfig: web/ has its own (DOM, bundler resolution).
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A promise nobody awaits or catches loses its error: on a broker that is a silent stall.
      '@typescript-eslint/no-floating-promises': 'error',
      // An async callback where a void one is expected (EventEmitter, socket handlers) drops its rejection.
      '@typescript-eslint/no-misused-promises': 'error',
      // verbatimModuleSyntax already needs `import type`; the rule keeps it consistent across the tree.
      // `typeof import('…')` stays allowed: web/chat.ts types a UMD global that way.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // The house style: no `any`, no @ts-ignore (STYLE.md §TypeScript).
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/ban-ts-comment': ['error', { 'ts-expect-error': 'allow-with-description' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Left off: `async` without `await` is how this tree implements Promise-returning interfaces (a throw becomes a
      // rejection); 23 such methods, none a defect.
      '@typescript-eslint/require-await': 'off',
      // Re-raising what a `catch` caught (unknown) as a rejection is right; only invented reasons must be Errors.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `let x; … x = open(() => x?.y())`: the closure reads x before its one assignment, so it cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    // Plain JavaScript (this file, infra/probe.mjs): no TypeScript program to check them against.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      // Node's globals that these scripts use (TypeScript files get theirs from @types/node instead).
      globals: Object.fromEntries(['Buffer', 'URL', 'clearTimeout', 'console', 'process', 'setTimeout'].map((g) => [g, 'readonly'])),
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly', __dirname: 'readonly' } },
  },
);
