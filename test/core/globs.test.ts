// The one glob matcher: dot files, odd file names, and the directory pruning the surface walk relies on.
import { describe, expect, it } from 'vitest';
import { globBases, globDirMatcher, globMatcher } from '../../src/core/globs.js';

describe('globMatcher', () => {
  it('matches dot files and dot directories like any other', () => {
    const m = globMatcher(['model/**', '*.py']);
    expect(m('model/.hidden')).toBe(true);
    expect(m('model/.cache/x.bin')).toBe(true);
    expect(m('.setup.py')).toBe(true);
    expect(m('other/x.py')).toBe(false);
  });

  it('matches names with a newline or other odd characters the same as plain ones', () => {
    const m = globMatcher(['model/**', '*.py', 'notes/?.md']);
    const odd = ['new\nline', 'carriage\rreturn', 'tab\there', 'line\u2028sep', 'next\u0085line', 'back\\slash', 'br[ack]et', "quo'te\"s", 'star*', 'ü日本', ' lead', '!bang', '#hash'];
    for (const name of odd) {
      expect(m(`model/${name}`), JSON.stringify(name)).toBe(true);
      expect(m(`model/sub/${name}.py`), JSON.stringify(name)).toBe(true);
      expect(m(`${name}.py`), JSON.stringify(name)).toBe(true);
      expect(m(`elsewhere/${name}`), JSON.stringify(name)).toBe(false);
    }
    expect(m('notes/\n.md')).toBe(true);
  });

  it('treats an empty list (or empty globs) as matching nothing, and strips a leading ./', () => {
    expect(globMatcher([])('anything')).toBe(false);
    expect(globMatcher([''])('anything')).toBe(false);
    expect(globMatcher(['./train.py'])('train.py')).toBe(true);
  });
});

describe('globDirMatcher', () => {
  it('says which directories can hold a match, and only prunes those that cannot', () => {
    const d = globDirMatcher(['src/**/*.py', 'notes/*.md', 'train.py']);
    expect(d('src')).toBe(true);
    expect(d('src/deep/er')).toBe(true);
    expect(d('notes')).toBe(true);
    expect(d('notes/sub')).toBe(false);
    expect(d('.venv')).toBe(false);
    expect(d('data')).toBe(false);
  });

  it('enters everything for a glob that starts with ** or cannot be split by segment', () => {
    expect(globDirMatcher(['**/*.py'])('.venv/lib')).toBe(true);
    expect(globDirMatcher(['{a,b/c}/*.py'])('anything')).toBe(true);
    expect(globDirMatcher([])('src')).toBe(false);
  });

  it('matches directory names with odd characters', () => {
    expect(globDirMatcher(['*/x.py'])('new\nline')).toBe(true);
  });
});

describe('globBases', () => {
  it('gives literal base directories, or null when a glob has none', () => {
    expect(globBases(['src/**/*.py', 'data/**', 'ratchet.json'])).toEqual(['src', 'data', 'ratchet.json']);
    expect(globBases(['**/*.lock'])).toBeNull();
  });
});
