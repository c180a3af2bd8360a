// Git plumbing for the loop, hardened against the repo it runs in: no hooks, filters, fsmonitor or attribute drivers ever run.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { RatchetError } from './errors.js';
import { buildTree } from './git/build-tree.js';
import { encodeCommit, identityFrom, type Identity } from './git/commit-object.js';
import { changedPaths, countDiff, numstatCounts, type DiffCounts } from './git/diff-stats.js';
import { writeIndexFile } from './git/index-file.js';
import { ObjectStore } from './git/objects.js';
import { refNamesOnDisk } from './git/ref-names.js';
import { RefWriter } from './git/refs.js';
import { gitFailure, runGit, type GitOptions, type TreeEntry } from './git/run.js';
import { writeBlobs } from './git/write-files.js';
import { isInternal } from './walk.js';

export { gitEnv, quotePath, runGit, type GitOptions, type GitResult, type TreeEntry } from './git/run.js';
export { isInternal } from './walk.js';


export class Git {
  private identity: Promise<Identity> | null = null;
  private usable = false;
  private markers: Promise<[string, string][]> | null = null;
  readonly objects: ObjectStore;
  private readonly refs: RefWriter;
  private readonly branchMoves: RefWriter;
  /** An index sync after a branch move, finished before anything reads the index again. */
  private indexSync: Promise<void> = Promise.resolve();
  private lastIndexSync: Promise<void> = Promise.resolve();

  constructor(readonly repo: string) {
    this.objects = new ObjectStore(repo);
    this.refs = new RefWriter(repo);
    this.branchMoves = new RefWriter(repo, 'ratchet: keep');
  }

  /** Ends the long-lived object reader and ref writer; a later call starts new ones. */
  close(): void {
    this.objects.close();
    this.refs.close();
    this.branchMoves.close();
  }

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
    const ops: [string, string][] = [
      ['MERGE_HEAD', 'merge'],
      ['rebase-merge', 'rebase'],
      ['rebase-apply', 'rebase'],
      ['CHERRY_PICK_HEAD', 'cherry-pick'],
      ['REVERT_HEAD', 'revert'],
      ['BISECT_LOG', 'bisect'],
    ];
    // Whether this is a work tree, and where each marker lives, do not change: asked of git once.
    this.markers ??= (async () => {
      const probe = await runGit(this.repo, ['rev-parse', '--is-inside-work-tree', ...ops.flatMap(([name]) => ['--git-path', name])], { allowFail: true });
      const lines = probe.stdout.toString('utf8').split('\n');
      if (probe.code !== 0 || lines[0] !== 'true') {
        throw new RatchetError('git_state', `${this.repo} is not a git work tree.`, 'Run `git init && git add -A && git commit -m init` there, or point ratchet at your repo with --repo.');
      }
      return ops.map(([, op], i) => [lines[i + 1]!, op] as [string, string]);
    })();
    this.markers.catch(() => (this.markers = null));
    const markers = await this.markers;
    if (!(await this.resolve('HEAD'))) {
      throw new RatchetError('git_state', 'The repo has no commit yet.', 'Commit your starting code (`git add -A && git commit -m baseline`), then start the session.');
    }
    for (const [p, op] of markers) {
      if (existsSync(isAbsolute(p) ? p : join(this.repo, p))) {
        throw new RatchetError('git_state', `A git ${op} is in progress.`, `Finish or abort the ${op} (e.g. \`git ${op} --abort\`), then call the tool again.`);
      }
    }
    this.usable = true;
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

  async head(): Promise<string> {
    const sha = await this.resolve('HEAD');
    if (!sha) throw new RatchetError('git_state', `HEAD of ${this.repo} is not a commit.`, 'Commit your starting code (`git add -A && git commit -m baseline`), then call the tool again.');
    return sha;
  }

  /** The branch HEAD points at, read from HEAD itself; null when detached. */
  async currentBranch(): Promise<string | null> {
    const { headFile } = await this.objects.where();
    const text = await readFile(headFile, 'utf8').catch(() => '');
    const m = /^ref: refs\/heads\/(.+)\n?$/.exec(text);
    return m ? m[1]! : null;
  }

  async refExists(ref: string): Promise<boolean> {
    return !ref.startsWith('-') && (await this.objects.info(ref)) !== null;
  }

  async resolve(ref: string): Promise<string | null> {
    if (ref.startsWith('-')) return null;
    const info = await this.objects.info(`${ref}^{commit}`);
    return info?.oid ?? null;
  }

  /** Object ids of many refs; null for each that does not exist. Tags are not peeled. */
  async resolveRefs(refs: string[]): Promise<Map<string, string | null>> {
    const result = new Map<string, string | null>();
    for (const r of refs) result.set(r, r && !r.startsWith('-') ? ((await this.objects.info(r))?.oid ?? null) : null);
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

  /** Author and committer as git would take them: GIT_* variables, then the user's config, then ratchet's own. */
  private identityOf(): Promise<Identity> {
    this.identity ??= runGit(this.repo, ['config', '-z', '--get-regexp', '^user\\.(name|email)$'], { allowFail: true }).then((r) => identityFrom(r.stdout.toString('utf8'), process.env));
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
    for (const path of paths) {
      const abs = isAbsolute(path) ? path : join(this.repo, path);
      const st = await lstat(abs).catch(() => null);
      if (!st || !(st.isSymbolicLink() || st.isFile())) continue;
      const content = st.isSymbolicLink() ? await readlink(abs, { encoding: 'buffer' }) : await readFile(abs).catch(() => null);
      if (content === null) continue;
      const oid = await this.objects.write('blob', content, { store: opts.write !== false });
      result.set(path, { mode: st.isSymbolicLink() ? '120000' : st.mode & 0o111 ? '100755' : '100644', oid });
    }
    return result;
  }

  /**
   * A tree made from `base` (a commit or tree; none: empty) with `set` entries added or replaced and
   * `removed` paths deleted. Only the trees on changed paths are read and written again.
   */
  async buildTree(base: string | null, set: Map<string, TreeEntry>, removed: string[] = []): Promise<string> {
    const baseTree = base ? (await this.objects.info(`${base}^{tree}`))?.oid : null;
    if (base && !baseTree) throw new RatchetError('git_state', `${base} is not a commit or tree.`, 'Check the commit, then call the tool again.');
    return buildTree(this.objects, baseTree ?? null, set, removed);
  }

  async commitTree(tree: string, parents: string[], message: string): Promise<string> {
    return this.objects.write('commit', encodeCommit(tree, parents, message, await this.identityOf(), new Date()));
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
    const entries = new Map<string, TreeEntry>();
    for (const [path, content] of Object.entries(opts.files)) {
      entries.set(path, { mode: '100644', oid: await this.objects.write('blob', Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8')) });
    }
    const tree = await this.buildTree(null, entries);
    return this.commitTree(tree, opts.parent ? [opts.parent] : [], opts.message);
  }

  /**
   * Commits the working tree as git sees it (tracked files plus untracked files that are not ignored)
   * on top of `parent`. Used to save the agent's edits under a ref so nothing is lost; a candidate
   * is built from the surface scan instead (commitCandidate), which does not trust ignore files.
   */
  async snapshot(parent: string, message: string): Promise<{ commit: string; tree: string }> {
    const [tracked, { indexed, others }] = await Promise.all([this.lsTree(parent), this.indexAndOthers()]);
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

  async treeOf(commit: string): Promise<string> {
    const info = await this.objects.info(`${commit}^{tree}`);
    if (!info) throw new RatchetError('git_state', `${commit} is not a commit.`, 'Check the commit, then call the tool again.');
    return info.oid;
  }

  /** Every entry of a commit's tree, recursively (trees themselves left out): path → mode and object id. */
  async lsTree(rev: string): Promise<Map<string, TreeEntry>> {
    const root = rev.startsWith('-') ? null : await this.objects.info(`${rev}^{tree}`);
    if (!root) throw new RatchetError('git_state', `${rev} is not a commit or tree.`, 'Check the commit, then call the tool again.');
    const entries = new Map<string, TreeEntry>();
    const visit = async (oid: string, prefix: string): Promise<void> => {
      for (const [name, e] of await this.objects.readTree(oid)) {
        if (e.mode === '040000') await visit(e.oid, `${prefix}${name}/`);
        else entries.set(`${prefix}${name}`, e);
      }
    };
    await visit(root.oid, '');
    return entries;
  }

  /** The content of `path` at `rev`, or null when either does not exist or it is not a file. */
  async readBlob(rev: string, path: string): Promise<Buffer | null> {
    if (rev.startsWith('-')) return null;
    const spec = `${rev}:${path}`;
    // A path with a newline cannot be asked by name; look it up in the tree instead.
    const oid = spec.includes('\n') ? (await this.lsTree(rev).catch(() => null))?.get(path)?.oid : spec;
    const obj = oid ? await this.objects.contents(oid) : null;
    return obj && obj.info.type === 'blob' ? obj.data : null;
  }

  /**
   * Files changed between two commits and the lines inserted and deleted, as `git diff-tree --numstat`
   * counts them, computed here from the blobs (git/diff-stats.ts); a large rewrite is left to git.
   */
  async diffStats(from: string, to: string): Promise<DiffCounts> {
    const [a, b] = await Promise.all([this.lsTree(from), this.lsTree(to)]);
    return (await countDiff(this.objects, a, b)) ?? numstatCounts(await this.text(['diff-tree', '-r', '--numstat', '-z', '--no-renames', '--no-ext-diff', '--no-textconv', from, to]));
  }

  /** Paths that differ between two commits; a rename (same content under a new path) is paired, from → path. */
  async changedBetween(from: string, to: string): Promise<{ path: string; from?: string }[]> {
    const [a, b] = await Promise.all([this.lsTree(from), this.lsTree(to)]);
    return changedPaths(a, b);
  }

  /** Tracked and untracked-not-ignored files. */
  async listFiles(): Promise<string[]> {
    return this.lsFiles(['--cached', '--others', '--exclude-standard']);
  }

  /** The index's paths and the untracked files git does not ignore, in one `ls-files` (tagged by -t). */
  async indexAndOthers(): Promise<{ indexed: string[]; others: string[] }> {
    const indexed = new Set<string>();
    const others = new Set<string>();
    await this.indexSync;
    for (const record of (await this.text(['ls-files', '-z', '-t', '--cached', '--others', '--exclude-standard'])).split('\0')) {
      if (record.length < 3) continue;
      (record[0] === '?' ? others : indexed).add(record.slice(2));
    }
    return { indexed: [...indexed], others: [...others] };
  }

  /** `git ls-files -z` with the given selection; reads the index and the directories, hashes nothing. */
  async lsFiles(selection: string[]): Promise<string[]> {
    await this.indexSync;
    return [...new Set((await this.text(['ls-files', '-z', ...selection])).split('\0').filter(Boolean))];
  }

  /**
   * Ref names under `prefix` (ending in "/"). With git's files ref store they are read straight from
   * refs/ and packed-refs, as git itself reads them, instead of starting a process on every call.
   */
  async listRefs(prefix: string): Promise<string[]> {
    const { commonDir } = await this.objects.where();
    if (!prefix.endsWith('/') || existsSync(join(commonDir, 'reftable'))) {
      const out = await this.text(['for-each-ref', '--format=%(refname)', prefix]);
      return out.split('\n').filter(Boolean);
    }
    return refNamesOnDisk(commonDir, prefix);
  }

  // ------------------------------------------------------------------------------------------
  // Moving refs
  // ------------------------------------------------------------------------------------------

  /** Points `ref` at `commit`; with `expected`, only if it still points there (null: only if it does not exist). */
  async setRef(ref: string, commit: string, expected?: string | null): Promise<void> {
    await this.refs.update(ref, commit, expected);
  }

  /**
   * Moves the session branch from `expected` to `commit` (compare-and-swap, so a branch moved by
   * someone else is never overwritten), then points the index at HEAD; the working tree is not touched.
   */
  async advanceBranch(branch: string, commit: string, expected: string): Promise<void> {
    await this.branchMoves.update(`refs/heads/${branch}`, commit, expected);
    // The index follows in the background; readers of it wait (see settled), so the caller can overlap other work.
    const sync = this.indexSync.then(() => this.readTree(commit));
    this.lastIndexSync = sync;
    this.indexSync = sync.catch(() => undefined);
  }

  /**
   * The real index set to `rev`'s tree. A plain read-tree reads no file; `-m` or `--reset` would
   * check racily-clean entries against the working tree and so run a clean filter. The cost: the
   * user's next `git status` re-reads every file once.
   */
  async syncIndex(rev: string): Promise<void> {
    await this.indexSync;
    await this.readTree(rev);
  }

  /** What `git read-tree <rev>` does, written here from the tree (git/index-file.ts): one process fewer per keep. */
  private async readTree(rev: string): Promise<void> {
    const [entries, { indexFile, format }] = await Promise.all([this.lsTree(rev), this.objects.where()]);
    writeIndexFile(indexFile, entries, format);
  }

  /** HEAD detached at `commit` (an agent's worktree follows its base this way); the index and files are not touched. */
  async detachHead(commit: string): Promise<void> {
    await runGit(this.repo, ['update-ref', '--no-deref', '-m', 'ratchet: the agent\'s base', 'HEAD', commit]);
  }

  /** Resolves once every index write this object started is done; rejects if the latest one failed. */
  settled(): Promise<void> {
    return this.lastIndexSync;
  }

  /**
   * Writes blobs into files under `root` with their exact committed bytes and modes. With
   * `replace`, whatever stands at a path (file, link, directory) is replaced.
   */
  writeFiles(root: string, entries: [string, TreeEntry][], opts: { replace: boolean }): Promise<void> {
    return writeBlobs(this.objects, root, entries, opts);
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
    await writeBlobs(this.objects, dir, entries, { replace: false });
  }

  /** A bundle of `refs` at `file`, so they can be restored after a `git gc` or a deleted ref. */
  async bundle(file: string, refs: string[]): Promise<void> {
    if (!refs.length) throw new RatchetError('invalid_argument', 'A bundle needs at least one ref.', 'Pass the refs to save.');
    await runGit(this.repo, ['bundle', 'create', '--quiet', file, ...refs]);
  }
}
