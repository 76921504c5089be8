// Lint for the TypeScript sources, tests and bench: typescript-eslint's recommended type-aware-free rules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'web/', 'bench/results.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    // A disable comment that no longer silences anything is stale: fail on it so they stay honest.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Unused arguments named with a leading underscore are part of a signature on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
