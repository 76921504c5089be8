// Lint for the TypeScript sources, tests, bench and examples: typescript-eslint's recommended rules, which
// need no type information (the lint takes seconds, tsc does the type checking).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Every `eslint-disable…` comment names its rules and says why after ` -- `, so each exception is reviewable. */
const disableNeedsReason = {
  meta: { type: 'suggestion', schema: [], messages: { bare: 'Say which rule and why: `eslint-disable-next-line rule -- reason`.' } },
  create(context) {
    return {
      Program() {
        for (const comment of context.sourceCode.getAllComments()) {
          const text = comment.value.trim();
          if (!/^eslint-disable(-next-line|-line)?\b/.test(text)) continue;
          const [directive, reason] = text.split(/\s--\s/);
          if (!reason?.trim() || directive.trim().split(/\s+/).length < 2) context.report({ loc: comment.loc, messageId: 'bare' });
        }
      },
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'web/', 'bench/results.json'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    // A disable comment that no longer silences anything is stale: fail on it so they stay honest.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { local: { rules: { 'disable-needs-reason': disableNeedsReason } } },
    rules: {
      'local/disable-needs-reason': 'error',
      // Unused arguments named with a leading underscore are part of a signature on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
