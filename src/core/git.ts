// Git plumbing for the loop, hardened against the repo it runs in: no hooks, filters, fsmonitor or attribute drivers ever run.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { RatchetError } from './errors.js';
import { gitFailure, quotePath, runGit, type GitOptions, type TreeEntry } from './git/run.js';
import { writeBlobs } from './git/write-files.js';
import { isInternal } from './walk.js';

export { gitEnv, quotePath, runGit, type GitOptions, type GitResult, type TreeEntry } from './git/run.js';
export { isInternal } from './walk.js';

const FALLBACK_IDENTITY = { name: 'ratchet', email: 'ratchet@localhost' };

export class Git {
  private identity: Promise<Record<string, string>> | null = null;

  constructor(readonly repo: string) {}

  /** stdout as text without the final newline; throws on failure. */
  private async text(args: string[], opts?: GitOptions): Promise<string> {
    return (await runGit(this.repo, args, opts)).stdout.toString('utf8').replace(/\n$/, '');
  }

  /** stdout as text, or '' when git exits non-zero (a missing ref, a path not in a tree). */
  private async textOrEmpty(args: string[], opts?: GitOptions): Promise<string> {
    const r = await runGit(this.repo, args, { ...opts, allowFail: true });
    return r.code === 0 ? r.stdout.toString('utf8').replace(/\n$/, '') : '';
  }

  /** Refuses anything that is not a git work tree with at least one commit and no operation half done. */
  async assertUsable(): Promise<void> {
    const markers: [string, string][] = [
      ['MERGE_HEAD', 'merge'],
      ['rebase-merge', 'rebase'],
      ['rebase-apply', 'rebase'],
      ['CHERRY_PICK_HEAD', 'cherry-pick'],
      ['REVERT_HEAD', 'revert'],
      ['BISECT_LOG', 'bisect'],
    ];
    const probe = await runGit(this.repo, ['rev-parse', '--is-inside-work-tree', ...markers.flatMap(([name]) => ['--git-path', name])], { allowFail: true });
    const lines = probe.stdout.toString('utf8').split('\n');
    if (probe.code !== 0 || lines[0] !== 'true') {
      throw new RatchetError('git_state', `${this.repo} is not a git work tree.`, 'Run `git init && git add -A && git commit -m init` there, or point ratchet at your repo with --repo.');
    }
    if (!(await this.resolve('HEAD'))) {
      throw new RatchetError('git_state', 'The repo has no commit yet.', 'Commit your starting code (`git add -A && git commit -m baseline`), then start the session.');
    }
    for (const [i, [, op]] of markers.entries()) {
      const p = lines[i + 1]!;
      if (existsSync(isAbsolute(p) ? p : join(this.repo, p))) {
        throw new RatchetError('git_state', `A git ${op} is in progress.`, `Finish or abort the ${op} (e.g. \`git ${op} --abort\`), then call the tool again.`);
      }
    }
  }

  async gitPath(name: string): Promise<string> {
    const p = await this.text(['rev-parse', '--git-path', name]);
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
    return this.text(['rev-parse', '--verify', 'HEAD^{commit}']);
  }

  async currentBranch(): Promise<string | null> {
    return (await this.textOrEmpty(['symbolic-ref', '-q', '--short', 'HEAD'])) || null;
  }

  async refExists(ref: string): Promise<boolean> {
    return (await this.textOrEmpty(['rev-parse', '--verify', '-q', '--end-of-options', ref])) !== '';
  }

  async resolve(ref: string): Promise<string | null> {
    return (await this.textOrEmpty(['rev-parse', '--verify', '-q', '--end-of-options', `${ref}^{commit}`])) || null;
  }

  /** Object ids of many refs in one process; null for each that does not exist. Tags are not peeled. */
  async resolveRefs(refs: string[]): Promise<Map<string, string | null>> {
    const result = new Map<string, string | null>();
    // A name with a newline cannot be a ref and would desynchronise the batch.
    const asked = refs.filter((r) => !r.includes('\n') && r.length > 0);
    for (const r of refs) result.set(r, null);
    if (!asked.length) return result;
    const out = await this.text(['cat-file', '--batch-check=%(objectname)'], { input: asked.map((r) => `${r}\n`).join('') });
    const lines = out.split('\n');
    asked.forEach((ref, i) => {
      const line = lines[i] ?? '';
      result.set(ref, /^[0-9a-f]{40,64}$/.test(line) ? line : null);
    });
    return result;
  }

  async isValidBranchName(name: string): Promise<boolean> {
    const r = await runGit(this.repo, ['check-ref-format', '--branch', name], { allowFail: true });
    return r.code === 0;
  }

  /**
   * Creates the session branch at `at` (default HEAD) and points HEAD at it. Files are not touched;
   * the index follows the new commit only when it differs from HEAD's.
   */
  async createBranch(branch: string, at = 'HEAD'): Promise<void> {
    const ref = `refs/heads/${branch}`;
    const [head, target] = await Promise.all([this.head(), at === 'HEAD' ? null : this.resolve(at)]);
    if (at !== 'HEAD' && !target) throw new RatchetError('git_state', `${at} is not a commit.`, 'Pass the commit the session branch should start at.');
    // An empty old value: refuse if the branch already exists.
    await runGit(this.repo, ['update-ref', '-m', 'ratchet: create session branch', ref, target ?? head, '']);
    await runGit(this.repo, ['symbolic-ref', '-m', 'ratchet: switch to session branch', 'HEAD', ref]);
    if (target && target !== head) await this.syncIndex(target);
  }

  /** `tip` and its first parents back to `base` (included when it is on that chain), newest first. */
  async firstParentChain(tip: string, base: string): Promise<string[]> {
    const baseSha = /^[0-9a-f]{40,64}$/.test(base) ? base : await this.resolve(base);
    if (!baseSha) throw new RatchetError('git_state', `${base} is not a commit.`, 'Pass the commit the session started from.');
    const out = await this.text(['rev-list', '--first-parent', '--boundary', tip, `^${base}`, '--']);
    const chain: string[] = [];
    for (const line of out.split('\n')) {
      if (!line) continue;
      // Boundary commits are printed with "-": only the base itself belongs to the chain.
      if (line.startsWith('-')) {
        if (line.slice(1) === baseSha) chain.push(baseSha);
      } else chain.push(line);
    }
    if (!chain.length && (await this.resolve(tip)) === baseSha) chain.push(baseSha);
    return chain;
  }

  /** Author and committer from the user's config, or ratchet's own when none is set. */
  private identityEnv(): Promise<Record<string, string>> {
    this.identity ??= (async () => {
      const out = await this.textOrEmpty(['config', '-z', '--get-regexp', '^user\\.(name|email)$']);
      const set = new Set(out.split('\0').map((kv) => kv.split('\n')[0]));
      const env: Record<string, string> = {};
      if (!set.has('user.email') && !process.env.GIT_AUTHOR_EMAIL) Object.assign(env, { GIT_AUTHOR_EMAIL: FALLBACK_IDENTITY.email, GIT_COMMITTER_EMAIL: FALLBACK_IDENTITY.email });
      if (!set.has('user.name') && !process.env.GIT_AUTHOR_NAME) Object.assign(env, { GIT_AUTHOR_NAME: FALLBACK_IDENTITY.name, GIT_COMMITTER_NAME: FALLBACK_IDENTITY.name });
      return env;
    })();
    return this.identity;
  }

  // ------------------------------------------------------------------------------------------
  // Building commits: blobs hashed without filters, trees built in a throwaway index
  // ------------------------------------------------------------------------------------------

  /**
   * Writes the files at `paths` (repo-relative, or absolute) as blobs, exactly as their bytes are on
   * disk: no clean filter, no end-of-line conversion. Symlinks are hashed by their target string.
   * Returns each path's entry; missing paths and directories are left out.
   */
  async hashFiles(paths: string[], opts: { write?: boolean } = {}): Promise<Map<string, TreeEntry>> {
    const result = new Map<string, TreeEntry>();
    if (!paths.length) return result;
    const scratch = await mkdtemp(join(tmpdir(), 'ratchet-hash-'));
    try {
      const asked: { path: string; source: string; mode: string }[] = [];
      let links = 0;
      for (const path of paths) {
        const abs = isAbsolute(path) ? path : join(this.repo, path);
        const st = await lstat(abs).catch(() => null);
        if (!st) continue;
        if (st.isSymbolicLink()) {
          // hash-object follows links; the blob of a symlink is its target string.
          const source = join(scratch, `link-${links++}`);
          await writeFile(source, await readlink(abs, { encoding: 'buffer' }));
          asked.push({ path, source, mode: '120000' });
        } else if (st.isFile()) {
          asked.push({ path, source: abs, mode: st.mode & 0o111 ? '100755' : '100644' });
        }
      }
      if (!asked.length) return result;
      const input = asked.map((a) => `${quotePath(a.source)}\n`).join('');
      const out = await this.text(['hash-object', ...(opts.write === false ? [] : ['-w']), '--no-filters', '--stdin-paths'], { input });
      const oids = out.split('\n');
      asked.forEach((a, i) => result.set(a.path, { mode: a.mode, oid: oids[i]! }));
      return result;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /**
   * A tree made from `base` (a commit or tree; none: empty) with `set` entries added or replaced and
   * `removed` paths deleted, built in a throwaway index so the real one is never touched.
   */
  async buildTree(base: string | null, set: Map<string, TreeEntry>, removed: string[] = []): Promise<string> {
    const scratch = await mkdtemp(join(tmpdir(), 'ratchet-index-'));
    try {
      const env = { GIT_INDEX_FILE: join(scratch, 'index') };
      if (base) await runGit(this.repo, ['read-tree', base], { env });
      const lines: string[] = [];
      // Mode 0 removes a path; removals go first so a file can replace a removed directory's contents.
      for (const path of removed) if (!set.has(path)) lines.push(`0 ${'0'.repeat(40)}\t${path}\0`);
      for (const [path, e] of set) lines.push(`${e.mode} ${e.oid}\t${path}\0`);
      if (lines.length) await runGit(this.repo, ['update-index', '-z', '--index-info'], { env, input: lines.join('') });
      return await this.text(['write-tree'], { env });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  async commitTree(tree: string, parents: string[], message: string): Promise<string> {
    return this.text(['commit-tree', '--no-gpg-sign', tree, ...parents.flatMap((p) => ['-p', p]), '-F', '-'], {
      env: await this.identityEnv(),
      input: message.endsWith('\n') ? message : `${message}\n`,
    });
  }

  /** A commit on `parent` whose tree is the parent's with `files` read from disk and `removed` deleted. */
  async commitFiles(opts: { parent: string; files: string[]; removed: string[]; message: string }): Promise<{ commit: string; tree: string }> {
    const entries = await this.hashFiles(opts.files);
    const missing = opts.files.filter((f) => !entries.has(f));
    if (missing.length) {
      throw new RatchetError('git_state', `Cannot commit ${missing.join(', ')}: not a file or symlink on disk.`, 'Check that the files still exist, then call the tool again.', { missing });
    }
    const tree = await this.buildTree(opts.parent, entries, opts.removed);
    return { tree, commit: await this.commitTree(tree, [opts.parent], opts.message) };
  }

  /** A commit whose tree holds exactly `files` (path → content); `parent` only links it into a history. */
  async commitBlobs(opts: { files: Record<string, string | Buffer>; message: string; parent?: string }): Promise<string> {
    const scratch = await mkdtemp(join(tmpdir(), 'ratchet-blobs-'));
    try {
      const paths = Object.keys(opts.files);
      const sources = await Promise.all(
        paths.map(async (path, i) => {
          const source = join(scratch, String(i));
          await writeFile(source, opts.files[path]!);
          return source;
        }),
      );
      const hashed = await this.hashFiles(sources);
      const entries = new Map(paths.map((path, i) => [path, { mode: '100644', oid: hashed.get(sources[i]!)!.oid }]));
      const tree = await this.buildTree(null, entries);
      return await this.commitTree(tree, opts.parent ? [opts.parent] : [], opts.message);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /**
   * Commits the working tree as git sees it (tracked files plus untracked files that are not ignored)
   * on top of `parent`. Used to save the agent's edits under a ref so nothing is lost; a candidate
   * is built from the surface scan instead (commitCandidate), which does not trust ignore files.
   */
  async snapshot(parent: string, message: string, _scratchDir?: string): Promise<{ commit: string; tree: string }> {
    const [tracked, indexed, others] = await Promise.all([
      this.lsTree(parent),
      this.lsFiles(['--cached']),
      this.lsFiles(['--others', '--exclude-standard']),
    ]);
    const paths = [...new Set([...tracked.keys(), ...indexed, ...others])].filter((p) => !p.endsWith('/') && !isInternal(p));
    const onDisk = await this.hashFiles(paths);
    // Gitlinks (submodules) stay as the parent has them: their content is not in this repository.
    for (const [path, e] of tracked) if (e.mode === '160000') onDisk.set(path, e);
    const removed = [...tracked.keys()].filter((p) => !onDisk.has(p));
    const tree = await this.buildTree(parent, onDisk, removed);
    return { tree, commit: await this.commitTree(tree, [parent], message) };
  }

  // ------------------------------------------------------------------------------------------
  // Reading
  // ------------------------------------------------------------------------------------------

  treeOf(commit: string): Promise<string> {
    return this.text(['rev-parse', '--verify', '--end-of-options', `${commit}^{tree}`]);
  }

  /** Every entry of a commit's tree, recursively: path → mode and object id. */
  async lsTree(rev: string): Promise<Map<string, TreeEntry>> {
    const out = await this.text(['ls-tree', '-r', '-z', '--full-tree', '--end-of-options', rev]);
    const entries = new Map<string, TreeEntry>();
    for (const record of out.split('\0')) {
      if (!record) continue;
      const tab = record.indexOf('\t');
      const [mode, , oid] = record.slice(0, tab).split(' ');
      entries.set(record.slice(tab + 1), { mode: mode!, oid: oid! });
    }
    return entries;
  }

  /** The content of `path` at `rev`, or null when either does not exist or it is not a file. */
  async readBlob(rev: string, path: string): Promise<Buffer | null> {
    const r = await runGit(this.repo, ['cat-file', 'blob', `${rev}:${path}`], { allowFail: true });
    return r.code === 0 ? r.stdout : null;
  }

  async diffStats(from: string, to: string): Promise<{ files: number; insertions: number; deletions: number }> {
    const out = await this.text(['diff-tree', '-r', '--numstat', '-z', '--no-renames', '--no-ext-diff', '--no-textconv', from, to]);
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
    const fields = (await this.text(['diff-tree', '-r', '--name-status', '-z', '-M', '--no-ext-diff', '--no-textconv', from, to])).split('\0');
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

  /** Tracked and untracked-not-ignored files. */
  async listFiles(): Promise<string[]> {
    return this.lsFiles(['--cached', '--others', '--exclude-standard']);
  }

  /** `git ls-files -z` with the given selection; reads the index and the directories, hashes nothing. */
  async lsFiles(selection: string[]): Promise<string[]> {
    return [...new Set((await this.text(['ls-files', '-z', ...selection])).split('\0').filter(Boolean))];
  }

  async listRefs(prefix: string): Promise<string[]> {
    const out = await this.text(['for-each-ref', '--format=%(refname)', prefix]);
    return out.split('\n').filter(Boolean);
  }

  // ------------------------------------------------------------------------------------------
  // Moving refs
  // ------------------------------------------------------------------------------------------

  /** Points `ref` at `commit`; with `expected`, only if it still points there (null: only if it does not exist). */
  async setRef(ref: string, commit: string, expected?: string | null): Promise<void> {
    const old = expected === undefined ? [] : [expected ?? ''];
    await runGit(this.repo, ['update-ref', ref, commit, ...old]);
  }

  /**
   * Moves the session branch from `expected` to `commit` (compare-and-swap, so a branch moved by
   * someone else is never overwritten), then points the index at HEAD; the working tree is not touched.
   */
  async advanceBranch(branch: string, commit: string, expected: string): Promise<void> {
    await runGit(this.repo, ['update-ref', '-m', 'ratchet: keep', `refs/heads/${branch}`, commit, expected]);
    await this.syncIndex('HEAD');
  }

  /**
   * The real index set to `rev`'s tree. A plain read-tree reads no file; `-m` or `--reset` would
   * check racily-clean entries against the working tree and so run a clean filter. The cost: the
   * user's next `git status` re-reads every file once.
   */
  async syncIndex(rev: string): Promise<void> {
    await runGit(this.repo, ['read-tree', rev]);
  }

  /**
   * Writes blobs into files under `root` with their exact committed bytes and modes. With
   * `replace`, whatever stands at a path (file, link, directory) is replaced.
   */
  writeFiles(root: string, entries: [string, TreeEntry][], opts: { replace: boolean }): Promise<void> {
    return writeBlobs(this.repo, root, entries, opts);
  }

  /**
   * Writes every file of `commit` into `dir` (created, or empty) with its exact committed bytes and
   * mode: executable bits, and symlinks as symlinks with their target string. Each blob's content is
   * checked against its id, so an object file rewritten on disk cannot slip into the workspace.
   */
  async materializeCommit(commit: string, dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    if ((await readdir(dir)).length) {
      throw new RatchetError('invalid_argument', `Cannot materialize ${commit} into ${dir}: the directory is not empty.`, 'Pass a new or empty directory.');
    }
    const entries = [...(await this.lsTree(commit))];
    const gitlinks = entries.filter(([, e]) => e.mode === '160000').map(([p]) => p);
    if (gitlinks.length) {
      throw new RatchetError(
        'git_state',
        `Commit ${commit.slice(0, 12)} contains submodules (${gitlinks.join(', ')}); ratchet cannot reproduce their content from this repository.`,
        'Vendor the submodule\'s files into the repository (or move it out of the tree), commit, and start a new session.',
        { gitlinks },
      );
    }
    await writeBlobs(this.repo, dir, entries, { replace: false });
  }

  /** A bundle of `refs` at `file`, so they can be restored after a `git gc` or a deleted ref. */
  async bundle(file: string, refs: string[]): Promise<void> {
    if (!refs.length) throw new RatchetError('invalid_argument', 'A bundle needs at least one ref.', 'Pass the refs to save.');
    await runGit(this.repo, ['bundle', 'create', '--quiet', file, ...refs]);
  }
}
