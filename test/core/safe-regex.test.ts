// Linear-time regexes: patterns that hang a backtracking engine return at once, normal patterns keep their meaning, unsupported ones are named.
import { describe, it, expect } from 'vitest';
import { compileGrep, compileSafeRegex, regexProblem, SafeRegex } from '../../src/core/safe-regex.js';
import { RatchetError } from '../../src/core/errors.js';

describe('safe regex', () => {
  // Each of these takes exponential time in V8 on these lines; the test would time out if one backtracked.
  it('returns on catastrophic patterns over long lines', () => {
    const line = `${'a'.repeat(48)}!`;
    expect(SafeRegex.compile('(a+)+$').test(line)).toBe(false);
    expect(SafeRegex.compile('(a|aa)+$').exec(line)).toBeNull();
    expect(SafeRegex.compile('^(.*a){20}$').test(`${'a'.repeat(60)}b`)).toBe(false);
    expect(SafeRegex.compile('(.*a){20}').exec('a'.repeat(60))?.text).toHaveLength(60);
    const many = `${line}\n`.repeat(500);
    expect([...SafeRegex.compile('^(a+)+$', { multiline: true }).matchAll(many)]).toEqual([]);
  });

  it('keeps numbered and named groups, indexes and flags', () => {
    const m = SafeRegex.compile('loss=(?<value>[0-9.]+) step=(\\d+)').exec('x loss=1.5 step=30 y');
    expect(m).toEqual({ text: 'loss=1.5 step=30', index: 2, groups: ['1.5', '30'], named: { value: '1.5' } });
    expect(SafeRegex.compile('(a)|(b)').exec('b')?.groups).toEqual([undefined, 'b']);
    expect(SafeRegex.compile('(?<step>\\d+) (?<value>\\d+)').groupNames.sort()).toEqual(['step', 'value']);
    expect(SafeRegex.compile('x(\\d)').groupCount).toBe(1);
    expect(SafeRegex.compile('^b$').test('a\nb')).toBe(false);
    expect([...SafeRegex.compile('^v=(\\d)$', { multiline: true }).matchAll('v=1\nx\nv=2')].map((m) => [m.index, m.groups[0]])).toEqual([
      [0, '1'],
      [6, '2'],
    ]);
    expect(SafeRegex.compile('LOSS', { ignoreCase: true }).test('loss')).toBe(true);
    expect(SafeRegex.compile('b(.)').exec('😀ab😀c')).toMatchObject({ index: 3, groups: ['😀'] }); // UTF-16 indexes, like JavaScript
  });

  it('accepts JavaScript escapes RE2 spells differently', () => {
    expect(SafeRegex.compile('\\u0041(\\d)').exec('A7')?.groups).toEqual(['7']);
    expect(SafeRegex.compile('\\u{1F600}').test('😀')).toBe(true);
    expect(SafeRegex.compile('\\cI').test('\t')).toBe(true);
    expect(SafeRegex.compile('a\\/b').test('a/b')).toBe(true);
    expect(SafeRegex.compile('[\\d.]+').exec('v 1.25')?.text).toBe('1.25');
  });

  it('names backreferences, lookaround and the like, and says what to write instead', () => {
    expect(regexProblem('(a)\\1')).toMatch(/backreference .* at character 4.*Instead, repeat the group's pattern/);
    expect(regexProblem('(?<v>a)\\k<v>')).toMatch(/named backreference/);
    expect(regexProblem('(?=loss)')).toMatch(/lookaround/);
    expect(regexProblem('x(?!y)')).toMatch(/lookaround .* at character 2/);
    expect(regexProblem('(?<=loss=)[0-9.]+')).toMatch(/lookaround.*"loss=\(\[0-9\.\]\+\)"/);
    expect(regexProblem('(?<!a)b')).toMatch(/lookaround/);
    expect(regexProblem('(?>a)')).toMatch(/atomic group/);
    expect(regexProblem('a++')).toMatch(/possessive/);
    expect(regexProblem('([0-9')).toMatch(/^not a valid regular expression: /);
    // Escaped or inside a class, the same characters are plain text.
    expect(regexProblem('\\(?=')).toBeNull();
    expect(regexProblem('[(?=]\\\\1')).toBeNull();
    expect(regexProblem('(?<name>x)')).toBeNull();
  });

  it('throws a RatchetError naming the pattern, with the caller\'s code and hint', () => {
    const err = (() => {
      try {
        compileSafeRegex('(a)\\1', { label: 'metric.pattern', code: 'config_invalid', hint: 'Fix metric.pattern.' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RatchetError);
    expect(err).toMatchObject({ code: 'config_invalid', hint: 'Fix metric.pattern.' });
    expect((err as RatchetError).message).toMatch(/^metric\.pattern: uses a backreference/);
    expect(() => compileGrep('(?=x)')).toThrow(/^grep: uses lookaround/);
    expect(compileGrep('loss|error').test('an error')).toBe(true);
  });
});
