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
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    const read = readSync(fd, buf, 0, buf.length, start);
    const lines = buf.subarray(0, read).toString('utf8').split('\n');
    // Starting mid-file means the first line (and maybe a UTF-8 sequence) is cut: drop it.
    if (start > 0) lines.shift();
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-maxLines).map((line) => line.replace(/\r$/, ''));
  } finally {
    closeSync(fd);
  }
}
