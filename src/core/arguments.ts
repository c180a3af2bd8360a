// Validation of free-text tool arguments (descriptions, hypotheses, reasons) against characters git, SQLite and the OS refuse or mangle.
import { z } from 'zod';

export interface BadCharacter {
  /** 0-based index in the string (UTF-16 units). */
  index: number;
  /** What was found, e.g. 'a NUL byte (\\u0000)'. */
  what: string;
}

/**
 * The first character free text may not hold: NUL and the other C0 controls except tab, newline and
 * carriage return (git cuts a commit message at NUL; terminals and TSV readers choke on the rest),
 * and unpaired UTF-16 surrogates, which have no UTF-8 encoding. Null when the text is clean.
 */
export function findBadCharacter(text: string, options: { singleLine?: boolean } = {}): BadCharacter | null {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      return { index: i, what: `an unpaired surrogate (\\u${hex(code)})` };
    }
    if (code >= 0xdc00 && code <= 0xdfff) return { index: i, what: `an unpaired surrogate (\\u${hex(code)})` };
    if (code === 0) return { index: i, what: 'a NUL byte (\\u0000)' };
    const lineBreak = code === 0x0a || code === 0x0d;
    if (lineBreak && options.singleLine) return { index: i, what: code === 0x0a ? 'a newline' : 'a carriage return' };
    if (code < 0x20 && code !== 0x09 && !lineBreak) return { index: i, what: `a control character (\\u${hex(code)})` };
  }
  return null;
}

/**
 * A zod string for free text: at most `max` characters, newlines and tabs allowed, NUL and other
 * control characters refused with a message that names the argument and says what to do.
 */
export function cleanText(max: number, name = 'this argument', required?: string): z.ZodString {
  return z
    .string(required ? { error: required } : undefined)
    .max(max, `${name} is longer than ${max} characters; shorten it`)
    .superRefine((text, ctx) => refuseBad(text, ctx, name, false));
}

/** Like cleanText, and on one line: for names, tags and short labels. */
export function cleanLine(max: number, name = 'this argument'): z.ZodString {
  return z
    .string()
    .max(max, `${name} is longer than ${max} characters; shorten it`)
    .superRefine((text, ctx) => refuseBad(text, ctx, name, true));
}

function refuseBad(text: string, ctx: z.RefinementCtx, name: string, singleLine: boolean): void {
  const bad = findBadCharacter(text, { singleLine });
  if (!bad) return;
  const allowed = singleLine ? 'tabs are allowed, line breaks are not' : 'newlines and tabs are allowed';
  ctx.addIssue({
    code: 'custom',
    message: `${name} contains ${bad.what} at character ${bad.index + 1}, which git and the OS cannot store; remove it and call again (${allowed}).`,
  });
}

function hex(code: number): string {
  return code.toString(16).padStart(4, '0');
}
