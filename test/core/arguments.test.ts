// Free-text tool arguments: newlines and tabs pass, NUL and other control characters are refused with the argument named.
import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import { cleanLine, cleanText, findBadCharacter } from '../../src/core/arguments.js';

const input = z.object({ description: cleanText(200, 'description'), tag: cleanLine(40, 'tag').optional() });

function messages(raw: unknown): string[] {
  const parsed = input.safeParse(raw);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('tool argument text', () => {
  it('accepts ordinary text, newlines, tabs, CRLF and any Unicode', () => {
    expect(messages({ description: 'lr 3e-4 → 1e-3\n\tand warmup 😀\r\n', tag: 'apr-23 ü' })).toEqual([]);
  });

  it('refuses NUL with the argument, the position and what to do', () => {
    expect(messages({ description: 'try\0this' })).toEqual([
      'description: description contains a NUL byte (\\u0000) at character 4, which git and the OS cannot store; remove it and call again (newlines and tabs are allowed).',
    ]);
  });

  it('refuses other control characters and unpaired surrogates, but not DEL', () => {
    expect(findBadCharacter('a\u0007b')).toEqual({ index: 1, what: 'a control character (\\u0007)' });
    expect(findBadCharacter('esc \u001b[31m')).toMatchObject({ index: 4 });
    expect(findBadCharacter('x\ud800y')).toEqual({ index: 1, what: 'an unpaired surrogate (\\ud800)' });
    expect(findBadCharacter('\udc00')).toMatchObject({ index: 0 });
    expect(findBadCharacter('ok\u007f')).toBeNull();
    expect(findBadCharacter('😀')).toBeNull();
  });

  it('keeps one-line arguments on one line', () => {
    expect(messages({ description: 'x', tag: 'a\nb' })[0]).toMatch(/^tag: tag contains a newline at character 2.*line breaks are not/);
    expect(findBadCharacter('a\tb', { singleLine: true })).toBeNull();
  });

  it('names the limit when text is too long', () => {
    expect(messages({ description: 'x'.repeat(201) })).toEqual(['description: description is longer than 200 characters; shorten it']);
  });
});
