// read_log paging by bytes: pages advance by byte offsets, never exceed their byte cap, cut huge lines, and grep finds matches across pages.
import { describe, it, expect, beforeAll } from 'vitest';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLogPage, MAX_LINE_BYTES, type LogPage } from '../../src/core/log-reader.js';
import { RatchetError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'ratchet-log-'));

function pageBytes(page: LogPage): number {
  return page.lines.reduce((sum, l) => sum + Buffer.byteLength(l.text), 0);
}

/** Every page from offset 0 to the end, checking at each step that the offset moves forward. */
async function allPages(path: string, opts: Parameters<typeof readLogPage>[1]): Promise<LogPage[]> {
  const pages: LogPage[] = [];
  let offset = 0;
  for (;;) {
    const page = await readLogPage(path, { ...opts, offset });
    pages.push(page);
    if (page.nextOffset === null) return pages;
    expect(page.nextOffset).toBeGreaterThan(offset);
    offset = page.nextOffset;
  }
}

describe('readLogPage on a flooded log', () => {
  const path = join(dir, 'flood.log');
  const HUGE = 5 * 1024 * 1024;
  const before = Array.from({ length: 3000 }, (_, i) => `step ${i} loss=${(3 - i / 1000).toFixed(3)}${i % 250 === 0 ? ` MATCH ${i}` : ''}`);
  const after = Array.from({ length: 2000 }, (_, i) => `after ${i}${i % 400 === 0 ? ` MATCH ${3000 + i}` : ''}`);

  beforeAll(() => {
    const fd = openSync(path, 'w');
    writeSync(fd, `${before.join('\n')}\n`);
    writeSync(fd, 'x'.repeat(HUGE)); // one 5 MB line, written in one go: no newline inside
    writeSync(fd, `\n${after.join('\n')}\n`);
    closeSync(fd);
  });

  it('pages through by byte offset, each page under its byte cap, the huge line cut once', async () => {
    const maxBytes = 8 * 1024;
    const pages = await allPages(path, { limit: 500, maxBytes });
    for (const page of pages) expect(pageBytes(page)).toBeLessThanOrEqual(maxBytes);
    const lines = pages.flatMap((p) => p.lines);
    const bytes = readFileSync(path);
    // Each line's offset points at its own first byte in the file.
    for (const line of [lines[0]!, lines[1234]!, lines[lines.length - 1]!]) {
      expect(bytes.subarray(line.offset, line.offset + 10).toString()).toBe(line.text.slice(0, 10));
    }
    const huge = lines.filter((l) => l.text.startsWith('xxxx'));
    expect(huge).toHaveLength(1);
    expect(huge[0]!.text).toContain(`… [cut: ${HUGE - MAX_LINE_BYTES} more bytes]`);
    expect(pages.reduce((n, p) => n + p.truncatedLines, 0)).toBe(1);
    expect(lines.filter((l) => !l.text.startsWith('xxxx')).map((l) => l.text)).toEqual([...before, ...after]);
  });

  it('walks through a line longer than one call may scan, and on to the lines after it', async () => {
    const maxScanBytes = 1024 * 1024;
    const pages = await allPages(path, { limit: 500, maxScanBytes });
    for (const page of pages) expect(page.scannedTo - page.scannedFrom).toBeLessThanOrEqual(maxScanBytes);
    const texts = pages.flatMap((p) => p.lines.map((l) => l.text));
    expect(texts.some((t) => /the line goes on past byte \d+\]$/.test(t))).toBe(true);
    expect(texts.slice(-after.length)).toEqual(after);
  });

  it('without offset returns the last lines and says the log ended', async () => {
    const page = await readLogPage(path, { limit: 3 });
    expect(page.lines.map((l) => l.text)).toEqual(after.slice(-3));
    expect(page.nextOffset).toBeNull();
    expect(page.totalBytes).toBe(readFileSync(path).length);
  });

  it('greps across pages and finds every match, even when a page holds none', async () => {
    const pages = await allPages(path, { grep: 'MATCH (\\d+)', limit: 3, maxScanBytes: 256 * 1024 });
    expect(pages.some((p) => p.lines.length === 0 && p.nextOffset !== null)).toBe(true);
    const found = pages.flatMap((p) => p.lines.map((l) => Number(/MATCH (\d+)/.exec(l.text)![1])));
    const expected = [...before, ...after].flatMap((l) => (/MATCH (\d+)/.exec(l) ? [Number(/MATCH (\d+)/.exec(l)![1])] : []));
    expect(found).toEqual(expected);
  });

  it('greps the end of the log without offset, and says where its search began', async () => {
    const page = await readLogPage(path, { grep: 'MATCH', limit: 2, maxScanBytes: 1024 * 1024 });
    expect(page.lines.map((l) => l.text)).toEqual(['after 1200 MATCH 4200', 'after 1600 MATCH 4600']);
    expect(page.scannedFrom).toBe(page.totalBytes - 1024 * 1024);
    expect(page.nextOffset).toBeNull();
  });

  it('runs a grep that would backtrack forever on a flood of near-matching lines', async () => {
    const redos = join(dir, 'redos.log');
    writeFileSync(redos, `${'a'.repeat(48)}!\n`.repeat(2000) + 'aaaa\n');
    const page = await readLogPage(redos, { grep: '^(a+)+$', offset: 0 });
    expect(page.lines.map((l) => l.text)).toEqual(['aaaa']);
  });
});

describe('readLogPage details', () => {
  it('reads a missing log as empty', async () => {
    expect(await readLogPage(join(dir, 'never.log'), { offset: 0 })).toMatchObject({ lines: [], nextOffset: null, totalBytes: 0 });
  });

  it('drops the \\r of CRLF lines and reads a last line without a newline', async () => {
    const path = join(dir, 'crlf.log');
    writeFileSync(path, 'one\r\ntwo\r\nthree');
    const page = await readLogPage(path, { offset: 0 });
    expect(page.lines).toEqual([
      { offset: 0, text: 'one' },
      { offset: 5, text: 'two' },
      { offset: 10, text: 'three' },
    ]);
    expect(page.nextOffset).toBeNull();
  });

  it('cuts a long line of multi-byte characters on a character boundary', async () => {
    const path = join(dir, 'utf8.log');
    writeFileSync(path, `${'é'.repeat(3000)}\n`);
    const [line] = (await readLogPage(path, { offset: 0 })).lines;
    expect(line!.text).not.toContain('\uFFFD');
    expect(line!.text).toMatch(/^é+… \[cut: \d+ more bytes\]$/);
  });

  it('an offset inside a line starts with the rest of that line', async () => {
    const path = join(dir, 'mid.log');
    writeFileSync(path, 'hello world\nnext\n');
    expect((await readLogPage(path, { offset: 6 })).lines.map((l) => l.text)).toEqual(['world', 'next']);
    expect((await readLogPage(path, { offset: 1000 })).lines).toEqual([]);
  });

  it('the tail of a short log is all of it, in order', async () => {
    const path = join(dir, 'short.log');
    writeFileSync(path, 'a\nb\nc\n');
    expect((await readLogPage(path, { limit: 2 })).lines.map((l) => l.text)).toEqual(['b', 'c']);
    expect((await readLogPage(path, { limit: 10 })).lines.map((l) => l.text)).toEqual(['a', 'b', 'c']);
  });

  it('refuses a grep the linear-time engine cannot run, naming the construct', async () => {
    const path = join(dir, 'short.log');
    const err = await readLogPage(path, { grep: '(a)\\1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RatchetError);
    expect((err as RatchetError).code).toBe('invalid_argument');
    expect((err as RatchetError).message).toMatch(/^grep: uses a backreference/);
  });
});
