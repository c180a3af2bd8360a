// The one glob matcher: every editable, protected and output glob becomes a predicate here, the same way.
import picomatch from 'picomatch';

export type PathMatcher = (path: string) => boolean;

/**
 * A predicate over repo-relative POSIX paths. Dot files match like any other, and the "s" flag lets
 * `**` match names that contain a newline or other odd characters. An empty list matches nothing
 * (picomatch itself would throw).
 */
export function globMatcher(globs: string[]): PathMatcher {
  const list = globs.map(normalizeGlob).filter((g) => g.length > 0);
  if (!list.length) return () => false;
  const match = picomatch(list, { dot: true, flags: 's' });
  return (path) => match(path);
}

/**
 * A conservative predicate over directories: false only when no path below `dir` can match any
 * glob, so a walk can skip big trees (a .venv, a data folder) that the globs never reach.
 */
export function globDirMatcher(globs: string[]): PathMatcher {
  const list = globs.map(normalizeGlob).filter((g) => g.length > 0);
  const patterns = list.map(segmentMatchers);
  return (dir) => {
    const parts = dir.split('/');
    return patterns.some((segments) => segments === null || prefixCanMatch(segments, parts));
  };
}

/**
 * The literal directories the globs start from (`src/**` → `src`), or null when one glob has no
 * literal base and the whole tree must be searched.
 */
export function globBases(globs: string[]): string[] | null {
  const bases = new Set<string>();
  for (const glob of globs.map(normalizeGlob)) {
    if (!glob) continue;
    const scan = picomatch.scan(glob);
    if (scan.negated) return null;
    // No glob characters: the pattern is itself a path (a file or a directory name).
    const base = scan.isGlob ? scan.base : glob;
    if (!base || base.includes('\\')) return null;
    bases.add(base);
  }
  return [...bases];
}

function normalizeGlob(glob: string): string {
  return glob.startsWith('./') ? glob.slice(2) : glob;
}

type Segment = '**' | PathMatcher;

/** One matcher per path segment; null when the glob cannot be split safely (a brace or extglob spanning "/"). */
function segmentMatchers(glob: string): Segment[] | null {
  if (/[{(][^})]*\//.test(glob)) return null;
  return glob.split('/').map((seg) => (seg === '**' ? '**' : picomatchSegment(seg)));
}

function picomatchSegment(seg: string): PathMatcher {
  const match = picomatch(seg, { dot: true, flags: 's' });
  return (name) => match(name);
}

/** Whether the directory `parts` can be a proper prefix of a path the segments match. */
function prefixCanMatch(segments: Segment[], parts: string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const seg = segments[i];
    if (seg === '**') return true;
    // The last segment names files, so a directory cannot sit at or beyond it.
    if (seg === undefined || i >= segments.length - 1) return false;
    if (!seg(parts[i]!)) return false;
  }
  return true;
}
