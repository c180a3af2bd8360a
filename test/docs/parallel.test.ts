// The README's "Several experiments at once" names what ratchet really accepts: the config key and the tool arguments;
// its pool section says how two repos share a machine, as the code does it and the tests it names attack it.
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { parseConfig } from '../../src/core/config.js';
import { tools } from '../../src/tools/index.js';
import { readmeSection } from '../helpers/readme.js';

describe('README: Several experiments at once', () => {
  it('documents the `parallel` key, wait_experiment {next: true} and wait_seconds 0, all of which exist', () => {
    const section = readmeSection('Several experiments at once');
    expect(section).toContain('"parallel": N');
    expect(section).toContain('wait_experiment {next: true}');
    expect(section).toContain('wait_seconds: 0');
    expect(section).toContain('stale_candidate');
    const base = { editable: ['a.py'], run: { command: 'x', budgetSeconds: 1 }, metric: { name: 'm', direction: 'minimize' } };
    expect(parseConfig({ ...base, parallel: 4 }).parallel).toBe(4);
    expect(parseConfig(base).parallel).toBe(1);
    expect(() => parseConfig({ ...base, parallel: 0 })).toThrow(/parallel/);
    const wait = tools.find((t) => t.name === 'wait_experiment')!;
    expect(Object.keys(wait.input)).toEqual(expect.arrayContaining(['id', 'next', 'wait_seconds']));
  });
});

describe('README: Two repos on one machine', () => {
  it('says devices are claimed machine-wide, in the words of the refusal, and names tests that exist and attack it', () => {
    const section = readmeSection('GPUs and CPU slots: the pool');
    const part = section.slice(section.indexOf('### Two repos on one machine'));
    expect(part).toContain('abstract Unix socket');
    expect(part).toContain('to another ratchet server (pid');
    expect(readFileSync('src/core/pool/run-pool.ts', 'utf8')).toContain('to another ratchet server (');
    for (const [file, phrase] of [
      ['test/core/pool/run-pool.test.ts', 'claimed machine-wide'],
      ['test/e2e/pool.test.ts', 'never run on one device at once'],
    ] as const) {
      expect(part).toContain(file);
      expect(existsSync(file)).toBe(true);
      expect(readFileSync(file, 'utf8')).toContain(phrase);
    }
  });
});
