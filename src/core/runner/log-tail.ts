// The last lines of a run log, reading at most its last 256 KiB however large it grew.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const TAIL_BYTES = 256 * 1024;

export function readLogTail(logPath: string, maxLines: number): string[] {
  if (maxLines <= 0) return [];
  let fd: number;
  try {
    fd = openSync(logPath, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    // Mid-file, one byte more is read so that the first piece is either cut (dropped) or empty after a newline.
    const start = size > TAIL_BYTES ? size - TAIL_BYTES - 1 : 0;
    const buf = Buffer.alloc(size - start);
    const read = readSync(fd, buf, 0, buf.length, start);
    const lines = buf.subarray(0, read).toString('utf8').split('\n');
    if (start > 0) lines.shift();
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-maxLines).map((line) => line.replace(/\r$/, ''));
  } finally {
    closeSync(fd);
  }
}
