// Paths inside the repo as ratchet names them: relative, sorted, quoted for a shell, and only at the top level of the repo.
import { runGit, type Git } from './git.js';
import { RatchetError } from './errors.js';
import { isAbsolute, posix, relative, sep } from 'node:path';

/** Repo-relative POSIX path of an absolute real path, '' for the repo itself, null when outside it. */
export function toRepoPath(realRepo: string, abs: string): string | null {
  const rel = relative(realRepo, abs);
  if (rel === '') return '';
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return rel.split(sep).join('/');
}

export function parentOf(path: string): string {
  const dir = posix.dirname(path);
  return dir === '.' ? '' : dir;
}

/** A directory's place in its repository does not change: git is asked once per directory. */
const prefixes = new Map<string, Promise<string>>();

function prefixOf(repo: string): Promise<string> {
  let known = prefixes.get(repo);
  if (!known) {
    known = runGit(repo, ['rev-parse', '--show-prefix'], { allowFail: true }).then((r) => {
      if (r.code !== 0) {
        prefixes.delete(repo);
        if (/not a git repository/i.test(r.stderr)) throw new RatchetError('git_state', `${repo} is not a git work tree.`, 'Point ratchet at your repository root.');
        throw new RatchetError('git_state', `git rev-parse failed in ${repo}: ${r.stderr.trim()}`, 'Check that the repo is a healthy git work tree (`git status` there), then call the tool again.');
      }
      return r.stdout.toString('utf8').trim();
    });
    prefixes.set(repo, known);
  }
  return known;
}

/** Paths from git are relative to the top level; checking from a subdirectory would miss changes elsewhere. */
export async function assertTopLevel(git: Git): Promise<void> {
  const prefix = await prefixOf(git.repo);
  if (prefix !== '') throw notTopLevel(git.repo, prefix);
}

/** The commit `ref` names, in a repository checked to be used from its top level. */
export async function topLevelCommit(git: Git, ref: string): Promise<string> {
  await assertTopLevel(git);
  const sha = await git.resolve(ref);
  if (!sha) throw new RatchetError('git_state', `${ref} is not a commit in ${git.repo}.`, 'Pass the commit the experiment started from (the session branch head).', { ref });
  return sha;
}

export function notTopLevel(repo: string, prefix: string): RatchetError {
  return new RatchetError('git_state', `${repo} is a subdirectory of a git repository (${prefix}).`, 'Point ratchet at the repository root, where .git lives.', { prefix });
}

export function byPath<T extends { path: string }>(a: T, b: T): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

export function short(sha: string): string {
  return sha.slice(0, 12);
}

export function list(paths: string[]): string {
  return paths.join(', ');
}

/** Quotes a path for a copy-pasteable shell command. */
export function shellQuote(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}
