// ESLint for the extension's TypeScript (`npm run lint`; `make lint-ext`, part of `make check`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'build/', 'node_modules/', 'workbench_jupyterlab/labextension/', 'style/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    rules: {
      // JupyterLab's conventions: interfaces start with I, no `any` slipping in, === only.
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-namespace': 'off',
      eqeqeq: 'error',
      curly: ['error', 'all'],
      'prefer-const': 'error'
    }
  }
);
