// User and agent regexes (metric.pattern, progressPattern, read_log's grep) compiled for a linear-time engine, so no pattern can hang the server.
import { RE2JS, RE2JSException } from 're2js';
import { RatchetError, type ErrorCode } from './errors.js';

/** One match, shaped like RegExpExecArray's useful parts; offsets are UTF-16 indices like JavaScript's. */
export interface SafeMatch {
  /** The whole match. */
  text: string;
  index: number;
  /** Numbered groups 1..n; undefined where a group did not take part. */
  groups: (string | undefined)[];
  named: Record<string, string | undefined>;
}

export interface SafeRegexOptions {
  /** ^ and $ match at line starts and ends ("\n" only), like JavaScript's "m" flag. */
  multiline?: boolean;
  ignoreCase?: boolean;
}

/** A compiled pattern that matches in time linear in the input (RE2 semantics, no backtracking). */
export class SafeRegex {
  readonly groupCount: number;
  readonly groupNames: string[];

  private constructor(
    readonly source: string,
    private readonly re: RE2JS,
  ) {
    this.groupCount = re.groupCount();
    this.groupNames = Object.keys(re.namedGroups());
  }

  /** Throws RegexProblem; prefer compileSafeRegex, which turns it into a RatchetError. */
  static compile(source: string, options: SafeRegexOptions = {}): SafeRegex {
    const unsupported = findUnsupported(source);
    if (unsupported) throw new RegexProblem(unsupported);
    let flags = 0;
    if (options.multiline) flags |= RE2JS.MULTILINE;
    if (options.ignoreCase) flags |= RE2JS.CASE_INSENSITIVE;
    try {
      return new SafeRegex(source, RE2JS.compile(toRe2Syntax(source), flags));
    } catch (err) {
      if (err instanceof RE2JSException) throw new RegexProblem(`not a valid regular expression: ${err.message.replace(/^error parsing regexp: /, '')}`);
      throw err;
    }
  }

  test(text: string): boolean {
    return this.re.test(text);
  }

  exec(text: string): SafeMatch | null {
    // The DFA answers "no match" without building capture state, which is most lines of a log.
    if (!this.re.test(text)) return null;
    const m = this.re.exec(text);
    return m ? toMatch(m) : null;
  }

  *matchAll(text: string): Generator<SafeMatch> {
    for (const m of this.re.matchAll(text)) yield toMatch(m as unknown as unknown[] & { index?: number; groups?: Record<string, string | undefined> });
  }
}

/** Why a pattern cannot be used; the message is written to follow the pattern's name ("metric.pattern: …"). */
export class RegexProblem extends Error {
  override name = 'RegexProblem';
}

/**
 * Compiles `source` or throws a RatchetError naming `label` (for example "metric.pattern"),
 * the construct that cannot run, and what to write instead.
 */
export function compileSafeRegex(
  source: string,
  options: SafeRegexOptions & { label?: string; code?: ErrorCode; hint?: string } = {},
): SafeRegex {
  try {
    return SafeRegex.compile(source, options);
  } catch (err) {
    if (!(err instanceof RegexProblem)) throw err;
    const label = options.label ?? 'the pattern';
    throw new RatchetError(
      options.code ?? 'invalid_argument',
      `${label}: ${err.message}`,
      options.hint ?? `Fix ${label}. Patterns use RE2 syntax: groups, alternation, classes and quantifiers work; backreferences and lookaround do not.`,
      { pattern: source, problem: err.message },
    );
  }
}

/** The problem with `source`, or null when it compiles; for validators that collect problems instead of throwing. */
export function regexProblem(source: string): string | null {
  try {
    SafeRegex.compile(source);
    return null;
  } catch (err) {
    if (err instanceof RegexProblem) return err.message;
    throw err;
  }
}

/** read_log's grep: one line at a time, so no multiline flag. */
export function compileGrep(source: string): SafeRegex {
  return compileSafeRegex(source, {
    label: 'grep',
    code: 'invalid_argument',
    hint: 'Pass an RE2 regular expression such as "loss|error" (no backreferences or lookaround), or omit grep.',
  });
}

function toMatch(m: unknown[] & { index?: number; groups?: Record<string, string | undefined> }): SafeMatch {
  const all = m as (string | undefined)[];
  return { text: all[0] ?? '', index: m.index ?? 0, groups: all.slice(1), named: { ...(m.groups ?? {}) } };
}

interface Construct {
  test: RegExp;
  name: string;
  instead: string;
}

// Each is matched at an unescaped position outside a character class (see findUnsupported).
const UNSUPPORTED: Construct[] = [
  { test: /^\(\?<?[=!]/, name: 'lookaround "(?=", "(?!", "(?<=" or "(?<!"', instead: 'match the surrounding text as part of the pattern and capture only the number, e.g. "loss=([0-9.]+)" instead of "(?<=loss=)[0-9.]+"' },
  { test: /^\(\?>/, name: 'an atomic group "(?>"', instead: 'use a plain group "(?:…)"; the engine never backtracks, so it is not needed' },
  { test: /^\\[1-9]/, name: 'a backreference ("\\1")', instead: 'repeat the group\'s pattern itself, e.g. "(\\w+) \\w+" instead of "(\\w+) \\1"' },
  { test: /^\\k</, name: 'a named backreference ("\\k<name>")', instead: 'repeat the group\'s pattern itself' },
  { test: /^[*+?][+]/, name: 'a possessive quantifier ("*+", "++", "?+")', instead: 'use the plain quantifier; the engine never backtracks, so it is not needed' },
];

/** Names the first construct RE2 cannot run, with the replacement; null when there is none. */
function findUnsupported(source: string): string | null {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (!inClass) {
      const rest = source.slice(i, i + 4);
      const hit = UNSUPPORTED.find((c) => c.test.test(rest));
      if (hit) return `uses ${hit.name} at character ${i + 1}, which the linear-time regex engine does not support. Instead, ${hit.instead}.`;
    }
    if (ch === '\\') i++;
    else if (ch === '[' && !inClass) inClass = true;
    else if (ch === ']' && inClass) inClass = false;
  }
  return null;
}

/** JavaScript escapes RE2 spells differently: "\uXXXX" and "\u{X}" become "\x{X}", "\cX" its control byte. */
function toRe2Syntax(source: string): string {
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = source[i + 1] ?? '';
    const hex4 = /^u([0-9A-Fa-f]{4})/.exec(source.slice(i + 1, i + 6));
    const braced = /^u\{([0-9A-Fa-f]{1,6})\}/.exec(source.slice(i + 1, i + 10));
    const control = /^c([A-Za-z])/.exec(source.slice(i + 1, i + 3));
    if (braced) {
      out += `\\x{${braced[1]}}`;
      i += braced[0].length;
    } else if (hex4) {
      out += `\\x{${hex4[1]}}`;
      i += hex4[0].length;
    } else if (control) {
      out += `\\x{${((control[1] as string).charCodeAt(0) % 32).toString(16)}}`;
      i += 2;
    } else {
      out += ch + next;
      i++;
    }
  }
  return out;
}
