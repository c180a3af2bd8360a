// The README sections users rely on cannot be dropped silently: install, the trust model's three lists, verify, and CI's test command.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { readmeSection } from '../helpers/readme.js';

const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');


describe('README', () => {
  it('Quick start gives the test command that CI runs, sandbox setup included', () => {
    const quick = readmeSection('Quick start');
    expect(quick).toContain('npm ci && npm run setup && npm test');
    expect(ci).toContain('npm ci && npm run setup && npm test');
  });

  it('the trust model says what is enforced, what is detected and what is not covered, with the sandbox boundaries', () => {
    const trust = readmeSection('Trust model');
    for (const heading of ['**Enforced (prevented):**', '**Detected (reported on the next tool call, keep refused):**', '**Not covered (and what to do):**']) expect(trust).toContain(heading);
    for (const fact of ['bubblewrap', 'ratchet verify', 'ratchet integrity --accept', 'refs/ratchet/ledger-head', 'evaluate']) expect(trust).toContain(fact);
  });

  it('documents the morning: ratchet status, the report with its files and resources, and the dashboard with its security note', () => {
    expect(readmeSection('`ratchet status`')).toContain('--json');
    const report = readmeSection('The morning report');
    for (const fact of ['ratchet report', 'report.md', 'progress.png', 'report.html', 'ratchet://report', 'ratchet://chart.png']) expect(report).toContain(fact);
    const dashboard = readmeSection('The dashboard');
    for (const fact of ['ratchet dashboard', 'ratchet show', '127.0.0.1', 'token', 'setup:browser']) expect(dashboard).toContain(fact);
  });

  it('documents ratchet verify and the performance figures\' source', () => {
    expect(readmeSection('`ratchet verify`')).toContain('--runs');
    expect(readmeSection('Performance')).toContain('npm run bench:overhead');
  });
});
