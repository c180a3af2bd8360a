// Paged reading of run logs by byte offset, with memory and work bounded per call: a 1 GB log or one 200 MB line costs no more than a small one.
import { open, type FileHandle } from 'node:fs/promises';
import { compileGrep, type SafeRegex } from './safe-regex.js';

export const MAX_PAGE_LINES = 500;
/** Text returned by one page at most (UTF-8 bytes of all its lines). */
export const MAX_PAGE_BYTES = 256 * 1024;
/** Smallest page allowed, so one cut line always fits. */
export const MIN_PAGE_BYTES = 4 * 1024;
/** A longer line is cut to this many bytes and a marker saying how much was left out. */
export const MAX_LINE_BYTES = 2000;
/** grep looks at this much of each line; the rest of a longer line is not searched. */
export const GREP_LINE_BYTES = 64 * 1024;
/** Bytes of the log one call examines at most; a call that stops there says where to continue. */
export const MAX_SCAN_BYTES = 32 * 1024 * 1024;

const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

export interface LogLine {
  /** Byte offset of the line's first byte in the file; passing it as `offset` reads from this line on. */
  offset: number;
  text: string;
}

export interface LogPage {
  lines: LogLine[];
  /** Byte offset to pass as `offset` for the next page; null when this page reached the end of the log. */
  nextOffset: number | null;
  totalBytes: number;
  /** Lines of this page that were cut to MAX_LINE_BYTES. */
  truncatedLines: number;
  /** The byte range this call examined: a grep without offset searched only [scannedFrom, totalBytes). */
  scannedFrom: number;
  scannedTo: number;
}

export interface LogPageOptions {
  /**
   * Byte offset to start from: 0 or a value returned as nextOffset or a line's offset. An offset inside a
   * line starts with the rest of that line. Omitted: the last `limit` lines (with grep: the last `limit`
   * matches among the last MAX_SCAN_BYTES of the log).
   */
  offset?: number;
  /** Lines to return, 1..MAX_PAGE_LINES (default 100). */
  limit?: number;
  /** Only lines matching this pattern (RE2 syntax, linear time); a string is compiled with compileGrep. */
  grep?: SafeRegex | string;
  /** Bytes of text per page, MIN_PAGE_BYTES..MAX_PAGE_BYTES (default MAX_PAGE_BYTES). */
  maxBytes?: number;
  /** Bytes examined per call (default MAX_SCAN_BYTES); tests use a small value. */
  maxScanBytes?: number;
}

interface Bounds {
  limit: number;
  maxBytes: number;
  maxScan: number;
  grep: SafeRegex | undefined;
}

export async function readLogPage(path: string, opts: LogPageOptions = {}): Promise<LogPage> {
  const bounds: Bounds = {
    limit: clamp(opts.limit ?? 100, 1, MAX_PAGE_LINES),
    maxBytes: clamp(opts.maxBytes ?? MAX_PAGE_BYTES, MIN_PAGE_BYTES, MAX_PAGE_BYTES),
    maxScan: Math.max(CHUNK_BYTES, opts.maxScanBytes ?? MAX_SCAN_BYTES),
    grep: typeof opts.grep === 'string' ? compileGrep(opts.grep) : opts.grep,
  };
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyPage(0);
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    if (opts.offset !== undefined) return await forwardPage(fh, size, Math.max(0, Math.floor(opts.offset)), bounds);
    if (bounds.grep) return await lastMatches(fh, size, bounds);
    return await forwardPage(fh, size, await tailStart(fh, size, bounds), bounds);
  } finally {
    await fh.close();
  }
}

/** Lines from `start` on, until the limit, the byte cap, the scan cap or the end of the log. */
async function forwardPage(fh: FileHandle, size: number, start: number, b: Bounds): Promise<LogPage> {
  if (start >= size) return emptyPage(size, start);
  const stop = Math.min(size, start + b.maxScan);
  const page: LogPage = { lines: [], nextOffset: null, totalBytes: size, truncatedLines: 0, scannedFrom: start, scannedTo: stop };
  let bytes = 0;
  let position = start;
  for await (const raw of scanLines(fh, start, stop, size, b.grep ? GREP_LINE_BYTES : MAX_LINE_BYTES)) {
    // A short line cut by the scan cap is read whole by the next call; only a first line this long is shown in part.
    if (!raw.complete && raw.offset > start) return { ...page, nextOffset: raw.offset, scannedTo: raw.offset };
    position = raw.end;
    if (b.grep && !b.grep.test(textOf(raw.head, raw.terminated))) continue;
    const line = render(raw);
    const cost = Buffer.byteLength(line.text);
    if (bytes + cost > b.maxBytes) return { ...page, nextOffset: raw.offset, scannedTo: raw.offset };
    page.lines.push({ offset: raw.offset, text: line.text });
    bytes += cost;
    if (line.cut) page.truncatedLines++;
    if (page.lines.length >= b.limit) break;
  }
  return { ...page, nextOffset: position < size ? position : null, scannedTo: position };
}

/** Where the last `limit` lines that fit in maxBytes start, found by reading backwards at most maxScan bytes. */
async function tailStart(fh: FileHandle, size: number, b: Bounds): Promise<number> {
  const floor = Math.max(0, size - b.maxScan);
  let end = size; // end of the line being measured (its newline excluded)
  let lines = 0;
  let cost = 0;
  let position = size;
  const buf = Buffer.alloc(CHUNK_BYTES);
  while (position > floor) {
    const from = Math.max(floor, position - CHUNK_BYTES);
    const { bytesRead } = await fh.read(buf, 0, position - from, from);
    for (let i = bytesRead - 1; i >= 0; i--) {
      const at = from + i;
      if (buf[at - from] !== NEWLINE || at === size - 1) continue; // the log's final newline ends the last line
      const lineStart = at + 1;
      const lineCost = Math.min(end - lineStart, MAX_LINE_BYTES + 64);
      if (lines + 1 > b.limit || cost + lineCost > b.maxBytes) return end === size ? lineStart : end + 1;
      lines++;
      cost += lineCost;
      end = at;
    }
    position = from;
  }
  // The first line of the searched window: whole when it begins the log and fits, else left out, or shown in part when it is all there is.
  const firstFits = floor === 0 && lines + 1 <= b.limit && cost + Math.min(end, MAX_LINE_BYTES + 64) <= b.maxBytes;
  return lines > 0 && !firstFits ? end + 1 : floor;
}

/** The last `limit` matching lines among the log's last maxScan bytes. */
async function lastMatches(fh: FileHandle, size: number, b: Bounds): Promise<LogPage> {
  const from = Math.max(0, size - b.maxScan);
  const kept: { line: LogLine; cost: number; cut: boolean }[] = [];
  let bytes = 0;
  const skipFirst = from > 0 && !(await startsLine(fh, from));
  let first = true;
  for await (const raw of scanLines(fh, from, size, size, GREP_LINE_BYTES)) {
    if (first && skipFirst) {
      first = false;
      continue; // the rest of a line that began before the searched window
    }
    first = false;
    if (!b.grep!.test(textOf(raw.head, raw.terminated))) continue;
    const line = render(raw);
    const cost = Buffer.byteLength(line.text);
    kept.push({ line: { offset: raw.offset, text: line.text }, cost, cut: line.cut });
    bytes += cost;
    while (kept.length > b.limit || bytes > b.maxBytes) bytes -= kept.shift()!.cost;
  }
  return {
    lines: kept.map((k) => k.line),
    nextOffset: null,
    totalBytes: size,
    truncatedLines: kept.filter((k) => k.cut).length,
    scannedFrom: from,
    scannedTo: size,
  };
}

interface RawLine {
  offset: number;
  /** The line's first bytes, at most the scan's keep size, without its newline. */
  head: Buffer;
  /** The line's whole length in bytes, without its newline. */
  length: number;
  /** Byte offset after the line and its newline, or where the scan stopped inside it. */
  end: number;
  terminated: boolean;
  /** False when the scan cap stopped inside the line; its end is not known yet. */
  complete: boolean;
}

/** Lines of [start, stop), keeping at most `keep` bytes of each, so memory stays bounded whatever the line lengths. */
async function* scanLines(fh: FileHandle, start: number, stop: number, size: number, keep: number): AsyncGenerator<RawLine> {
  const buf = Buffer.alloc(CHUNK_BYTES);
  let lineStart = start;
  let parts: Buffer[] = [];
  let kept = 0;
  let position = start;
  while (position < stop) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK_BYTES, stop - position), position);
    if (bytesRead === 0) break;
    let from = 0;
    while (from < bytesRead) {
      const nl = buf.indexOf(NEWLINE, from);
      const to = nl < 0 || nl >= bytesRead ? bytesRead : nl;
      if (kept < keep && to > from) {
        const piece = Buffer.from(buf.subarray(from, Math.min(to, from + keep - kept)));
        parts.push(piece);
        kept += piece.length;
      }
      if (to === bytesRead) break;
      const end = position + nl + 1;
      yield { offset: lineStart, head: Buffer.concat(parts), length: end - 1 - lineStart, end, terminated: true, complete: true };
      lineStart = end;
      parts = [];
      kept = 0;
      from = nl + 1;
    }
    position += bytesRead;
  }
  if (position > lineStart) {
    const atEof = position >= size;
    yield { offset: lineStart, head: Buffer.concat(parts), length: position - lineStart, end: position, terminated: false, complete: atEof };
  }
}

function render(raw: RawLine): { text: string; cut: boolean } {
  const fits = raw.length <= MAX_LINE_BYTES && raw.complete;
  if (fits) return { text: textOf(raw.head, raw.terminated), cut: false };
  const shown = charBoundary(raw.head, Math.min(raw.head.length, MAX_LINE_BYTES));
  const marker = raw.complete ? `… [cut: ${raw.length - shown} more bytes]` : `… [cut: the line goes on past byte ${raw.end}]`;
  return { text: raw.head.subarray(0, shown).toString('utf8') + marker, cut: true };
}

/** The line as text, without the "\r" of a CRLF ending. */
function textOf(head: Buffer, terminated: boolean): string {
  const text = head.toString('utf8');
  return terminated && text.endsWith('\r') ? text.slice(0, -1) : text;
}

/** The largest cut at or below `at` that does not split a UTF-8 character. */
function charBoundary(bytes: Buffer, at: number): number {
  let cut = at;
  while (cut > 0 && cut < bytes.length && ((bytes[cut] as number) & 0xc0) === 0x80) cut--;
  return cut;
}

async function startsLine(fh: FileHandle, offset: number): Promise<boolean> {
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, offset - 1);
  return one[0] === NEWLINE;
}

function emptyPage(size: number, at = size): LogPage {
  return { lines: [], nextOffset: null, totalBytes: size, truncatedLines: 0, scannedFrom: at, scannedTo: at };
}

function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(n)));
}
