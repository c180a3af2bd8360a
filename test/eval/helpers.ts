// Temporary repos holding an eval suite, and runEval called in-process with its stdout and stderr captured.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runEval, type EvalFlags } from '../../src/eval/command.js';

export interface SuiteRepo {
  dir: string;
  write: (path: string, content: string, mode?: number) => string;
  eval: (flags?: EvalFlags, suite?: string) => Promise<{ code: number; stdout: string; stderr: string }>;
  cleanup: () => void;
}

export function makeSuiteRepo(files: Record<string, string>): SuiteRepo {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-eval-test-'));
  const write = (path: string, content: string, mode?: number) => {
    const full = join(dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    if (mode !== undefined) chmodSync(full, mode);
    return full;
  };
  for (const [path, content] of Object.entries(files)) write(path, content);
  return {
    dir,
    write,
    eval: async (flags = {}, suite) => {
      let stdout = '';
      let stderr = '';
      const code = await runEval(dir, suite, flags, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
      return { code, stdout, stderr };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** An agent that ignores its prompt and prints `text`. */
export function printing(text: string): string {
  return `cat > /dev/null; printf '%s\\n' '${text.replace(/'/g, `'\\''`)}'`;
}

/** A case file with an inline prompt and the given assertions (YAML flow items). */
export function caseYaml(assertions: string[], extra = ''): string {
  return `prompt: "Summarize the notes."\n${extra}assertions:\n${assertions.map((a) => `  - ${a}\n`).join('')}`;
}
