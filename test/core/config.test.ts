// ratchet.json validation: one clear error naming each bad key; the shipped JSON Schema matches the zod schema.
import { describe, it, expect } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, loadConfig, configJsonSchema, baselineRepeatsOf } from '../../src/core/config.js';
import { RatchetError } from '../../src/core/errors.js';

const valid = { editable: ['train.py'], run: { command: 'python train.py', budgetSeconds: 300 }, metric: { name: 'val_bpb', direction: 'minimize' } };

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(RatchetError);
    expect((err as RatchetError).code).toBe('config_invalid');
    return (err as RatchetError).details!.problems as string[];
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('fills defaults', () => {
    const c = parseConfig(valid);
    expect(c.run.graceSeconds).toBe(10);
    expect(c.run.env).toEqual({});
    expect(c.protected).toEqual([]);
    expect(c.metric.secondary).toEqual([]);
  });

  it('accepts an argv command, evaluate, constraints and gpu', () => {
    const c = parseConfig({
      ...valid,
      run: { command: ['python', 'train.py'], budgetSeconds: 300, env: { SEED: '1' } },
      evaluate: { command: 'python eval.py', budgetSeconds: 60 },
      metric: { name: 'val_bpb', direction: 'minimize', constraints: [{ metric: 'peak_vram_mb', max: 80000 }] },
      gpu: { required: true, perRun: 2 },
    });
    expect(c.gpu).toEqual({ required: true, perRun: 2 });
    expect(c.evaluate?.graceSeconds).toBe(10);
  });

  it('takes the pool: devices under gpu.pool, CPU slots under pool, both optional', () => {
    const c = parseConfig({ ...valid, gpu: { perRun: 1, pool: [0, 'GPU-3f8a2c71', 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29'] }, pool: { cpuSlots: 4 } });
    expect(c.gpu?.pool).toEqual([0, 'GPU-3f8a2c71', 'MIG-e13a7d58-2f6c-5b94-8d0e-6a4f1c3b7d29']);
    expect(c.pool).toEqual({ cpuSlots: 4 });
    expect(parseConfig({ ...valid, gpu: { pool: 'all' } }).gpu).toEqual({ required: false, perRun: 1, pool: 'all' });
    // Absent keys stay absent, so a pinned config from before the pool reads the same.
    expect(parseConfig(valid).pool).toBeUndefined();
    expect(problems({ ...valid, gpu: { pool: ['cuda:0'] } })[0]).toMatch(/^gpu\.pool\.0: .*nvidia-smi index/);
    expect(problems({ ...valid, gpu: { pool: [] } })[0]).toMatch(/^gpu\.pool: /);
    expect(problems({ ...valid, pool: { cpuSlots: 0 } })[0]).toMatch(/^pool\.cpuSlots: /);
    expect(problems({ ...valid, pool: { gpus: 2 } })).toEqual(['pool: unknown key(s) "gpus"']);
  });

  it('names the key and the problem', () => {
    expect(problems({ ...valid, editable: [] })).toEqual(['editable: list at least one glob the agent may edit, e.g. ["train.py"]']);
    expect(problems({ ...valid, run: { command: 'x', budgetSeconds: -1 } })[0]).toMatch(/^run\.budgetSeconds: /);
    expect(problems({ ...valid, run: { command: '', budgetSeconds: 1 } })[0]).toMatch(/^run\.command: /);
    expect(problems({ ...valid, metric: { name: 'val_bpb', direction: 'down' } })[0]).toMatch(/^metric\.direction: .*minimize/);
    expect(problems({ ...valid, metric: { ...valid.metric, pattern: '([0-9' } })[0]).toMatch(/^metric\.pattern: not a valid regular expression/);
    expect(problems({ ...valid, metric: { ...valid.metric, pattern: '(?<=loss=)([0-9.]+)' } })[0]).toMatch(/^metric\.pattern: uses lookaround .*Instead/);
    expect(problems({ ...valid, metric: { ...valid.metric, progressPattern: '(?<step>\\d+) (?<value>\\d+) \\1' } })[0]).toMatch(/^metric\.progressPattern: uses a backreference/);
    expect(problems({ ...valid, metric: { ...valid.metric, pattern: 'loss [0-9.]+' } })[0]).toMatch(/capture group/);
    expect(problems({ ...valid, metric: { ...valid.metric, constraints: [{ metric: 'x' }] } })[0]).toMatch(/^metric\.constraints\.0: give "max", "min"/);
    expect(problems({ ...valid, gpu: { perRun: 0 } })[0]).toMatch(/^gpu\.perRun: /);
    expect(problems({ ...valid, decision: { rule: 'bayes' } })[0]).toMatch(/^decision\.rule: .*greedy.*significant/);
    expect(problems({ ...valid, decision: { confidence: 1 } })[0]).toMatch(/^decision\.confidence: /);
    expect(problems({ ...valid, decision: { maxRepeats: 1 } })[0]).toMatch(/^decision\.maxRepeats: /);
    expect(problems({ ...valid, decision: { minEffect: -0.1 } })[0]).toMatch(/^decision\.minEffect: /);
    expect(problems({ ...valid, decision: { repeats: 3 } })).toEqual(['decision: unknown key(s) "repeats"']);
    expect(problems({ ...valid, metric: { ...valid.metric, progressPattern: 'step (\\d+) loss ([0-9.]+)' } })[0]).toMatch(
      /^metric\.progressPattern: the pattern needs named groups "value" and "step"/,
    );
  });

  it('defaults to the significant rule, with three calibration runs only under it', () => {
    const c = parseConfig(valid);
    expect(c.decision).toMatchObject({ rule: 'significant', confidence: 0.95, minEffect: 0, maxRepeats: 5, prune: false });
    expect(baselineRepeatsOf(c)).toBe(3);
    expect(baselineRepeatsOf(parseConfig({ ...valid, decision: { rule: 'greedy' } }))).toBe(1);
    expect(baselineRepeatsOf(parseConfig({ ...valid, decision: { rule: 'greedy', baselineRepeats: 4 } }))).toBe(4);
    const custom = parseConfig({ ...valid, metric: { ...valid.metric, progressPattern: 'step (?<step>\\d+) loss (?<value>[0-9.]+)' } });
    expect(custom.metric.progressPattern).toContain('?<step>');
  });

  it('bounds every number, naming the key and the limit', () => {
    const run = { command: 'x', budgetSeconds: 1 };
    expect(problems({ ...valid, run: { ...run, budgetSeconds: 8 * 24 * 3600 } })).toEqual(['run.budgetSeconds: at most 604800 seconds (7 days)']);
    expect(problems({ ...valid, run: { ...run, graceSeconds: 601 } })).toEqual(['run.graceSeconds: at most 600 seconds']);
    expect(problems({ ...valid, run: { ...run, maxLogMegabytes: 10241 } })).toEqual(['run.maxLogMegabytes: at most 10240 (10 GiB)']);
    expect(problems({ ...valid, evaluate: { command: 'e', budgetSeconds: 1e9 } })[0]).toMatch(/^evaluate\.budgetSeconds: at most/);
    expect(problems({ ...valid, decision: { baselineRepeats: 51 } })[0]).toMatch(/^decision\.baselineRepeats: /);
    expect(problems({ ...valid, decision: { plateauWindow: 1001 } })[0]).toMatch(/^decision\.plateauWindow: /);
    expect(problems({ ...valid, decision: { minEffect: Infinity } })[0]).toMatch(/^decision\.minEffect: /);
    expect(problems({ ...valid, gpu: { perRun: 65 } })[0]).toMatch(/^gpu\.perRun: /);
    expect(problems({ ...valid, workspaces: { keepCrashed: 101 } })[0]).toMatch(/^workspaces\.keepCrashed: /);
    expect(problems({ ...valid, metric: { ...valid.metric, constraints: [{ metric: 'm', max: Infinity }] } })[0]).toMatch(/^metric\.constraints\.0\.max: /);
    const c = parseConfig({ ...valid, run: { ...run, budgetSeconds: 7 * 24 * 3600, graceSeconds: 600, maxLogMegabytes: 10240 } });
    expect(c.run.budgetSeconds).toBe(604800);
  });

  it('refuses NUL bytes in commands, env and globs, naming the key', () => {
    const run = { command: 'x', budgetSeconds: 1 };
    expect(problems({ ...valid, run: { ...run, command: 'python\0 train.py' } })).toEqual(['run.command: contains a NUL byte (\\u0000); remove it']);
    expect(problems({ ...valid, run: { ...run, command: ['python', 'a\0'] } })).toEqual(['run.command.1: contains a NUL byte (\\u0000); remove it']);
    expect(problems({ ...valid, run: { ...run, env: { SEED: '1\0' } } })).toEqual(['run.env.SEED: contains a NUL byte (\\u0000); remove it']);
    expect(problems({ ...valid, run: { ...run, env: { 'A\0B': '1' } } })).toEqual(['run.env.A\\u0000B: contains a NUL byte (\\u0000); remove it']);
    expect(problems({ ...valid, run: { ...run, env: { 'A=B': '1' } } })[0]).toMatch(/^run\.env\.A=B: .*no "="/);
    expect(problems({ ...valid, editable: ['train.py\0'] })).toEqual(['editable.0: contains a NUL byte (\\u0000); remove it']);
    expect(problems({ ...valid, protected: ['\0'] })[0]).toMatch(/^protected\.0: contains a NUL byte/);
    expect(problems({ ...valid, evaluate: { command: 'e', budgetSeconds: 1, env: { X: '\0' } } })[0]).toMatch(/^evaluate\.env\.X: contains a NUL/);
  });

  it('takes run.inputs, run.network, sandbox and workspaces with defaults', () => {
    const c = parseConfig(valid);
    expect(c.run).toMatchObject({ inputs: [], network: true });
    expect(c.sandbox).toBe('auto');
    expect(c.workspaces).toEqual({ keepCrashed: 5 });
    const custom = parseConfig({
      ...valid,
      run: { command: 'x', budgetSeconds: 1, inputs: ['data', '.venv', 'models/cache/'], network: false, outputs: ['ckpt/**'] },
      sandbox: 'required',
      workspaces: { keepCrashed: 0 },
    });
    expect(custom.run).toMatchObject({ inputs: ['data', '.venv', 'models/cache/'], network: false });
    expect(custom).toMatchObject({ sandbox: 'required', workspaces: { keepCrashed: 0 } });
    expect(problems({ ...valid, sandbox: 'yes' })[0]).toMatch(/^sandbox: .*auto.*required.*off/);
  });

  it('refuses inputs outside the repo or overlapping the edit surface or the outputs', () => {
    const run = (inputs: string[], outputs: string[] = []) => ({ ...valid, editable: ['train.py', 'src/**/*.py'], run: { command: 'x', budgetSeconds: 1, inputs, outputs } });
    expect(problems(run(['/data']))).toEqual(['run.inputs.0: "/data" is absolute; give a path relative to the repo root, e.g. "data"']);
    expect(problems(run(['data/../../etc']))[0]).toMatch(/^run\.inputs\.0: .*contains "\.\."/);
    expect(problems(run(['.git/objects']))[0]).toMatch(/^run\.inputs\.0: .*inside \.git or \.ratchet/);
    expect(problems(run(['data', 'train.py']))).toEqual(['run.inputs.1: "train.py" overlaps editable glob "train.py"; inputs are read-only, so keep them outside the edit surface']);
    expect(problems(run(['src']))[0]).toMatch(/^run\.inputs\.0: "src" overlaps editable glob "src\/\*\*\/\*\.py"/);
    expect(problems(run(['src/vendor/lib']))[0]).toMatch(/overlaps editable glob/);
    expect(problems(run(['data'], ['data/*.tmp']))[0]).toMatch(/^run\.inputs\.0: "data" overlaps run\.outputs glob "data\/\*\.tmp"/);
    expect(() => parseConfig(run(['data', 'srcdata', 'docs/train.py', '.venv']))).not.toThrow();
  });

  it('flags unknown keys so a typo is not silently ignored', () => {
    expect(problems({ ...valid, run: { command: 'x', budgetSeconds: 1, budget: 5 } })).toEqual(['run: unknown key(s) "budget"']);
    expect(problems({ ...valid, editables: ['x'] })).toEqual(['(top level): unknown key(s) "editables"']);
  });

  it('reports a missing file and broken JSON with the next step', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ratchet-config-'));
    expect(() => loadConfig(dir)).toThrow(/No ratchet.json/);
    try {
      loadConfig(dir);
    } catch (err) {
      expect((err as RatchetError).hint).toContain('ratchet init');
    }
    writeFileSync(join(dir, 'ratchet.json'), '{ "editable": [ }');
    expect(() => loadConfig(dir)).toThrow(/not valid JSON/);
  });

  it('ships the JSON Schema generated from the zod schema', () => {
    const shipped = JSON.parse(readFileSync(new URL('../../schema/ratchet.schema.json', import.meta.url), 'utf8'));
    expect(shipped).toEqual(configJsonSchema());
    expect(shipped.required).toEqual(['editable', 'run', 'metric']);
  });
});
