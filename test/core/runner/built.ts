// Makes sure dist/ holds a supervisor built from the current sources: the runner spawns the compiled script.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function staleOutputs(): string[] {
  const src = join(root, 'src/core/runner');
  return readdirSync(src)
    .filter((f) => f.endsWith('.ts'))
    .filter((f) => {
      const out = join(root, 'dist/core/runner', f.replace(/\.ts$/, '.js'));
      return !existsSync(out) || statSync(out).mtimeMs < statSync(join(src, f)).mtimeMs;
    });
}

/** Builds with tsc when dist/core/runner is missing or older than its sources (type errors elsewhere do not stop emit). */
export function ensureSupervisorBuilt(): void {
  if (staleOutputs().length === 0) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  let output = '';
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'pipe' });
  } catch (err) {
    output = String((err as { stdout?: Buffer }).stdout ?? err);
  }
  const stale = staleOutputs();
  if (stale.length > 0) throw new Error(`could not build the runner (${stale.join(', ')} stale):\n${output}`);
}
