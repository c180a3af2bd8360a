// The end-to-end tests spawn the built server; fail early with the fix when it is missing.
import { existsSync } from 'node:fs';

export default function setup(): void {
  if (!existsSync(new URL('../dist/cli.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm test` (it builds first) or `npm run build`.');
  }
}
