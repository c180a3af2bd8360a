// The README's "Several experiments at once" names what ratchet really accepts: the config key and the tool arguments.
import { describe, it, expect } from 'vitest';
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
