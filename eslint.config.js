// ESLint (flat config) for the TypeScript tree. `npm run lint` runs it; the README's test
// command runs that. The one house rule beyond the recommended sets: network modules
// (lib/modules) never reach the native addon directly; they use lib/core's typed API.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'prebuilds/**', 'lib/modules/acl/layout.gen.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        performance: 'readonly',
        queueMicrotask: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        __dirname: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      // codecs are generic over any value shape, and tests poke at wrong types on purpose
      '@typescript-eslint/no-explicit-any': 'off',
      // `_name` marks a value left unused on purpose (rest destructuring, callbacks)
      // iterator objects whose methods need the owner under a name of their own
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['lib/modules/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/core/native', '**/core/native.js'], message: "modules use lib/core's typed API, never the addon binding (lib/core/native.ts)" },
          ],
        },
      ],
    },
  },
);
