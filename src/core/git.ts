// Git plumbing for the loop: candidate commits off a temporary index, refs/ratchet/*, forward-only branch moves.
import { simpleGit, type SimpleGit } from 'simple-git';
import { existsSync, mkdirSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { join, dirname, isAbsolute } from 'node:path';
import { randomBytes } from 'node:crypto';
import picomatch from 'picomatch';
import { RatchetError } from './errors.js';

const FALLBACK_IDENTITY = { name: 'ratchet', email: 'ratchet@localhost' };

export class Git {
  private readonly git: SimpleGit;

  constructor(readonly repo: string) {
    this.git = simpleGit({ baseDir: repo, trimmed: true });
  }

  private raw(args: string[], env?: Record<string, string>): Promise<string> {
    if (!env) return this.git.raw(args);
    const full = { ...baseEnv(), ...env };
    return simpleGit({ baseDir: this.repo, trimmed: true, allowEnvironment: Object.keys(full) }).env(full).raw(args);
  }

  /** Refuses anything that is not a git work tree with at least one commit and no operation half done. */
  async assertUsable(): Promise<void> {
    const inside = await this.raw(['rev-parse', '--is-inside-work-tree']).catch(() => 'false');
    if (inside !== 'true') {
      throw new RatchetError('git_state', `${this.repo} is not a git work tree.`, 'Run `git init && git add -A && git commit -m init` there, or point ratchet at your repo with --repo.');
    }
    const head = await this.raw(['rev-parse', '--verify', '-q', 'HEAD']).catch(() => '');
    if (!head) {
      throw new RatchetError('git_state', 'The repo has no commit yet.', 'Commit your starting code (`git add -A && git commit -m baseline`), then start the session.');
    }
    const busy = await this.operationInProgress();
    if (busy) {
      throw new RatchetError('git_state', `A git ${busy} is in progress.`, `Finish or abort the ${busy} (e.g. \`git ${busy} --abort\`), then call the tool again.`);
    }
  }

  private async operationInProgress(): Promise<string | null> {
    const checks: [string, string][] = [
      ['MERGE_HEAD', 'merge'],
      ['rebase-merge', 'rebase'],
      ['rebase-apply', 'rebase'],
      ['CHERRY_PICK_HEAD', 'cherry-pick'],
      ['REVERT_HEAD', 'revert'],
      ['BISECT_LOG', 'bisect'],
    ];
    for (const [name, op] of checks) {
      if (existsSync(await this.gitPath(name))) return op;
    }
    return null;
  }

  async gitPath(name: string): Promise<string> {
    const p = await this.raw(['rev-parse', '--git-path', name]);
    return isAbsolute(p) ? p : join(this.repo, p);
  }

  /** Keeps ratchet's state out of `git status` without touching any tracked file such as .gitignore. */
  async excludeFromGit(entry: string): Promise<void> {
    const file = await this.gitPath('info/exclude');
    mkdirSync(dirname(file), { recursive: true });
    const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (current.split(/\r?\n/).includes(entry)) return;
    appendFileSync(file, `${current && !current.endsWith('\n') ? '\n' : ''}${entry}\n`);
  }

  head(): Promise<string> {
    return this.raw(['rev-parse', 'HEAD']);
  }

  async currentBranch(): Promise<string | null> {
    const name = await this.raw(['symbolic-ref', '-q', '--short', 'HEAD']).catch(() => '');
    return name || null;
  }

  async refExists(ref: string): Promise<boolean> {
    return (await this.raw(['rev-parse', '--verify', '-q', ref]).catch(() => '')) !== '';
  }

  async resolve(ref: string): Promise<string | null> {
    return (await this.raw(['rev-parse', '--verify', '-q', `${ref}^{commit}`]).catch(() => '')) || null;
  }

  async isValidBranchName(name: string): Promise<boolean> {
    return this.raw(['check-ref-format', '--branch', name]).then(
      () => true,
      () => false,
    );
  }

  /** Creates the session branch at HEAD and checks it out; uncommitted edits carry over. */
  async createBranch(branch: string): Promise<void> {
    await this.raw(['checkout', '-q', '-b', branch]);
  }

  private async identityEnv(): Promise<Record<string, string>> {
    const email = await this.raw(['config', 'user.email']).catch(() => '');
    const name = await this.raw(['config', 'user.name']).catch(() => '');
    const env: Record<string, string> = {};
    if (!email) Object.assign(env, { GIT_AUTHOR_EMAIL: FALLBACK_IDENTITY.email, GIT_COMMITTER_EMAIL: FALLBACK_IDENTITY.email });
    if (!name) Object.assign(env, { GIT_AUTHOR_NAME: FALLBACK_IDENTITY.name, GIT_COMMITTER_NAME: FALLBACK_IDENTITY.name });
    return env;
  }

  /**
   * Commits the whole working tree (tracked and untracked-not-ignored files) on top of `parent`
   * through a throwaway index, so neither the branch, the real index nor any file is touched.
   */
  async snapshot(parent: string, message: string, scratchDir: string): Promise<{ commit: string; tree: string }> {
    mkdirSync(scratchDir, { recursive: true });
    const index = join(scratchDir, `index-${process.pid}-${randomBytes(6).toString('hex')}`);
    const env = { GIT_INDEX_FILE: index, ...(await this.identityEnv()) };
    try {
      await this.raw(['read-tree', parent], env);
      await this.raw(['add', '-A', '--', '.'], env);
      const tree = await this.raw(['write-tree'], env);
      const commit = await this.raw(['commit-tree', tree, '-p', parent, '-m', message], env);
      return { commit, tree };
    } finally {
      rmSync(index, { force: true });
      rmSync(`${index}.lock`, { force: true });
    }
  }

  treeOf(commit: string): Promise<string> {
    return this.raw(['rev-parse', `${commit}^{tree}`]);
  }

  async diffStats(from: string, to: string): Promise<{ files: number; insertions: number; deletions: number }> {
    const out = await this.raw(['diff', '--numstat', '-z', from, to]);
    let files = 0, insertions = 0, deletions = 0;
    for (const entry of out.split('\0')) {
      const m = /^(\d+|-)\t(\d+|-)\t/.exec(entry);
      if (!m) continue;
      files++;
      insertions += m[1] === '-' ? 0 : Number(m[1]);
      deletions += m[2] === '-' ? 0 : Number(m[2]);
    }
    return { files, insertions, deletions };
  }

  /** Paths that differ between two commits, renames paired (from → path). */
  async changedBetween(from: string, to: string): Promise<{ path: string; from?: string }[]> {
    const fields = (await this.raw(['-c', 'core.quotepath=off', 'diff', '--name-status', '-z', '-M', '--no-ext-diff', from, to])).split('\0');
    const out: { path: string; from?: string }[] = [];
    for (let i = 0; i < fields.length; ) {
      const status = fields[i++];
      if (!status) continue;
      if (status.startsWith('R') || status.startsWith('C')) {
        const source = fields[i++]!;
        out.push({ path: fields[i++]!, from: status.startsWith('R') ? source : undefined });
      } else {
        out.push({ path: fields[i++]! });
      }
    }
    return out;
  }

  async setRef(ref: string, commit: string): Promise<void> {
    await this.raw(['update-ref', ref, commit]);
  }

  /**
   * Moves the session branch from `expected` to `commit` (compare-and-swap, so a branch moved by
   * someone else is never overwritten), then syncs the index; the working tree is not touched.
   */
  async advanceBranch(branch: string, commit: string, expected: string): Promise<void> {
    await this.raw(['update-ref', '-m', 'ratchet: keep', `refs/heads/${branch}`, commit, expected]);
    await this.raw(['reset', '-q']);
  }

  /** Puts HEAD's branch, index and the editable part of the working tree back at `commit`. */
  async resetTo(commit: string, editable: string[], protectedGlobs: string[]): Promise<string[]> {
    await this.raw(['reset', '-q', '--hard', commit]);
    const untracked = (await this.raw(['ls-files', '--others', '--exclude-standard', '-z'])).split('\0').filter(Boolean);
    const isEditable = picomatch(editable, { dot: true });
    const isProtected = picomatch(protectedGlobs.length ? protectedGlobs : ['\0'], { dot: true });
    // An entry ending in "/" is a nested repository: the snapshot holds only a gitlink, so deleting it could lose work.
    const removed = untracked.filter((p) => !p.endsWith('/') && isEditable(p) && !isProtected(p) && !p.startsWith('.ratchet/'));
    for (const p of removed) rmSync(join(this.repo, p), { force: true, recursive: true });
    return removed;
  }

  /**
   * Rewrites the working tree's files under `paths` to their content in `commit` (deleting those it
   * lacks), through a throwaway index so the real index and the branch are not touched. This is how
   * a repeat measures the best and then the candidate again in the same working tree.
   */
  async materialize(commit: string, paths: string[], scratchDir: string): Promise<void> {
    if (!paths.length) return;
    const present = new Set(
      (await this.raw(['-c', 'core.quotepath=off', 'ls-tree', '-r', '-z', '--name-only', commit, '--', ...paths])).split('\0').filter(Boolean),
    );
    for (const p of paths) if (!present.has(p)) rmSync(join(this.repo, p), { force: true });
    if (!present.size) return;
    mkdirSync(scratchDir, { recursive: true });
    const index = join(scratchDir, `index-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await this.raw(['read-tree', commit], { GIT_INDEX_FILE: index });
      await this.raw(['checkout-index', '-f', '--', ...present], { GIT_INDEX_FILE: index });
    } finally {
      rmSync(index, { force: true });
      rmSync(`${index}.lock`, { force: true });
    }
  }

  /** Tracked and untracked-not-ignored files. */
  async listFiles(): Promise<string[]> {
    return (await this.raw(['ls-files', '--cached', '--others', '--exclude-standard', '-z'])).split('\0').filter(Boolean);
  }

  /** Untracked files, git-ignored ones included (run outputs usually are). */
  async untrackedFiles(): Promise<string[]> {
    const [plain, ignored] = await Promise.all([
      this.raw(['ls-files', '--others', '--exclude-standard', '-z']),
      this.raw(['ls-files', '--others', '--ignored', '--exclude-standard', '-z']),
    ]);
    return [...plain.split('\0'), ...ignored.split('\0')].filter((p) => p && !p.endsWith('/'));
  }

  async listRefs(prefix: string): Promise<string[]> {
    const out = await this.raw(['for-each-ref', '--format=%(refname)', prefix]);
    return out.split('\n').filter(Boolean);
  }
}

/**
 * A minimal environment for git calls that need extra variables: simple-git refuses to pass on
 * editor and pager variables, and an inherited GIT_DIR or GIT_INDEX_FILE would point git elsewhere.
 */
function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TMPDIR', 'XDG_CONFIG_HOME', 'GIT_CONFIG_GLOBAL', 'GIT_CONFIG_NOSYSTEM'];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]!]));
}
