// Marks the CLI executable after tsc, which drops the mode bit.
import { chmodSync } from 'node:fs';
chmodSync(new URL('../dist/cli.js', import.meta.url), 0o755);
