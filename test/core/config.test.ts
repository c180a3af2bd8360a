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

  it('names the key and the problem', () => {
    expect(problems({ ...valid, editable: [] })).toEqual(['editable: list at least one glob the agent may edit, e.g. ["train.py"]']);
    expect(problems({ ...valid, run: { command: 'x', budgetSeconds: -1 } })[0]).toMatch(/^run\.budgetSeconds: /);
    expect(problems({ ...valid, run: { command: '', budgetSeconds: 1 } })[0]).toMatch(/^run\.command: /);
    expect(problems({ ...valid, metric: { name: 'val_bpb', direction: 'down' } })[0]).toMatch(/^metric\.direction: .*minimize/);
    expect(problems({ ...valid, metric: { ...valid.metric, pattern: '([0-9' } })[0]).toMatch(/^metric\.pattern: not a valid regular expression/);
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
