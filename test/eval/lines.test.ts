// The output format: what formatLines writes, and what the server reads back from it amid other text.
import { describe, it, expect } from 'vitest';
import { formatLines, percent, type EvalOutput } from '../../src/eval/lines.js';
import { parseCases } from '../../src/core/cases.js';
import { parseMetrics } from '../../src/core/metric.js';

const OUTPUT: EvalOutput = {
  cases: [
    { case: 'a', trial: 1, status: 'pass', assertions: [{ name: 'contains-1', status: 'pass' }] },
    { case: 'a', trial: 2, status: 'fail', assertions: [{ name: 'contains-1', status: 'fail' }] },
    { case: 'b.v2', trial: 1, status: 'error', assertions: [] },
  ],
  summary: { pass_rate: percent(1, 3), cases_passed: percent(1, 3), errors: 1, tokens: 1234, cost_usd: 0.1 + 0.2, held_out_pass_rate: 100 },
};

describe('eval output lines', () => {
  it('are fixed: case and assert lines, then the summary with rounded numbers', () => {
    expect(formatLines(OUTPUT)).toBe(
      [
        'case a 1 pass',
        'assert a 1 contains-1 pass',
        'case a 2 fail',
        'assert a 2 contains-1 fail',
        'case b.v2 1 error',
        'pass_rate: 33.33',
        'cases_passed: 33.33',
        'errors: 1',
        'tokens: 1234',
        'cost_usd: 0.3',
        'held_out_pass_rate: 100',
        '',
      ].join('\n'),
    );
  });

  it('are read back by the server as it reads a metric step: case results (skipping other text) and the summary as metric lines', () => {
    const noisy = `starting\n${formatLines(OUTPUT)}assert zz 1 orphan pass\nloss: nan\n`;
    expect(parseCases(noisy)).toEqual(
      OUTPUT.cases.map((c) => ({ case: c.case, trial: c.trial, outcome: c.status, asserts: Object.fromEntries(c.assertions.map((a) => [a.name, a.status === 'pass'])) })),
    );
    const figures = parseMetrics(noisy, { name: 'pass_rate', secondary: ['cases_passed', 'errors', 'tokens', 'cost_usd', 'held_out_pass_rate'] });
    expect(figures.value).toBe(33.33);
    expect(figures.secondary).toEqual({ cases_passed: 33.33, errors: 1, tokens: 1234, cost_usd: 0.3, held_out_pass_rate: 100 });
  });

  it('omit the optional lines when there is nothing to say', () => {
    expect(formatLines({ cases: [], summary: { pass_rate: 0, cases_passed: 0, errors: 0 } })).toBe('pass_rate: 0\ncases_passed: 0\nerrors: 0\n');
    expect(percent(0, 0)).toBe(0);
  });
});
