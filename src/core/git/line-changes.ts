// How many lines a change inserts and deletes, as `git diff --numstat` counts them, without starting git.

/** git's test for a binary file: a NUL in its first 8000 bytes. */
export function looksBinary(content: Buffer): boolean {
  return content.subarray(0, 8000).includes(0);
}

/**
 * Insertions and deletions of a minimal line diff from `a` to `b` (Myers' O(ND) algorithm, after the
 * common head and tail are cut). A last line without its newline differs from the same line with one,
 * as in git. Returns null when the diff would take more than `maxSteps` steps: a large rewrite, for
 * which the caller asks git instead.
 */
export function lineChanges(a: Buffer, b: Buffer, maxSteps = 4_000_000): { insertions: number; deletions: number } | null {
  const ids = new Map<string, number>();
  const x = lineIds(a, ids);
  const y = lineIds(b, ids);
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start++;
  let endX = x.length;
  let endY = y.length;
  while (endX > start && endY > start && x[endX - 1] === y[endY - 1]) {
    endX--;
    endY--;
  }
  // A line found on one side only is inserted or deleted whatever the diff; leaving such lines out
  // keeps the common subsequence and makes a full rewrite cost nothing (git's diff does the same).
  const inX = new Set(x.subarray(start, endX));
  const inY = new Set(y.subarray(start, endY));
  const xs = x.subarray(start, endX).filter((id) => inY.has(id));
  const ys = y.subarray(start, endY).filter((id) => inX.has(id));
  const onlyX = endX - start - xs.length;
  const onlyY = endY - start - ys.length;
  const d = xs.length && ys.length ? editDistance(xs, ys, maxSteps) : xs.length + ys.length;
  if (d === null) return null;
  // d = insertions + deletions among the shared lines, and ys.length - xs.length = insertions - deletions.
  return { insertions: onlyY + (d + ys.length - xs.length) / 2, deletions: onlyX + (d - ys.length + xs.length) / 2 };
}

function lineIds(content: Buffer, ids: Map<string, number>): Int32Array {
  const out: number[] = [];
  for (let at = 0; at < content.length; ) {
    const nl = content.indexOf(10, at);
    const end = nl < 0 ? content.length : nl + 1;
    const line = content.toString('latin1', at, end);
    let id = ids.get(line);
    if (id === undefined) ids.set(line, (id = ids.size));
    out.push(id);
    at = end;
  }
  return Int32Array.from(out);
}

/** The fewest insertions plus deletions that turn x into y; null past maxSteps. */
function editDistance(x: Int32Array, y: Int32Array, maxSteps: number): number | null {
  const n = x.length;
  const m = y.length;
  const max = n + m;
  const offset = max + 1;
  // v[offset + k]: the furthest x reached on diagonal k.
  const v = new Int32Array(2 * max + 3);
  let steps = 0;
  for (let d = 0; d <= max; d++) {
    for (let k = -d; k <= d; k += 2) {
      let i = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let j = i - k;
      while (i < n && j < m && x[i] === y[j]) {
        i++;
        j++;
        steps++;
      }
      v[offset + k] = i;
      if (i >= n && j >= m) return d;
    }
    steps += d + 1;
    if (steps > maxSteps) return null;
  }
  return max;
}
