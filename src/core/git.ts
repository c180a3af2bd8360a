// Git plumbing for the loop, hardened against the repo it runs in: no hooks, filters, fsmonitor or attribute drivers ever run.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readlink, rename, rm, rmdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { RatchetError } from './errors.js';
import { globMatcher } from './globs.js';

const FALLBACK_IDENTITY = { name: 'ratchet', email: 'ratchet@localhost' };

/**
 * Passed before every subcommand. Each closes a way for code the agent or a run wrote into the repo
 * (.git/config, .git/hooks, .gitattributes, .git/info/attributes) to run inside ratchet's git calls,
 * or to change what ratchet reads from the object store.
 */
const HARDENING = [
  '--no-pager',
  '--no-replace-objects',
  '-c', 'core.hooksPath=/dev/null',
  '-c', 'core.fsmonitor=false',
  '-c', 'core.untrackedCache=false',
  '-c', 'core.attributesFile=/dev/null',
  '-c', 'core.splitIndex=false',
  '-c', 'core.commitGraph=false',
  '-c', 'core.multiPackIndex=false',
  '-c', 'core.pager=cat',
  '-c', 'core.quotepath=off',
  '-c', 'commit.gpgSign=false',
  '-c', 'tag.gpgSign=false',
  '-c', 'gc.auto=0',
  '-c', 'maintenance.auto=false',
  '-c', 'protocol.allow=never',
  '-c', 'credential.helper=',
];

/** Inherited variables kept: the user's identity and global config. Every other GIT_* could aim git elsewhere or trace to a file. */
const KEPT_GIT_VARS = new Set(['GIT_CONFIG_GLOBAL', 'GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL']);

export interface GitOptions {
  /** Extra variables, e.g. GIT_INDEX_FILE for a throwaway index. */
  env?: Record<string, string>;
  input?: string | Buffer;
  /** Resolve with the exit code instead of throwing on a non-zero exit. */
  allowFail?: boolean;
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** A tree entry: mode as git writes it, and the object id. */
export interface TreeEntry {
  mode: string;
  oid: string;
}

export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_') || KEPT_GIT_VARS.has(key)) env[key] = value;
  }
  Object.assign(env, {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_NO_REPLACE_OBJECTS: '1',
    GIT_PROTOCOL_FROM_USER: '0',
  });
  return { ...env, ...extra };
}

/** The one git runner: a single hardened process per call, no shell, no pause after it exits. */
export function runGit(repo: string, args: string[], opts: GitOptions = {}): Promise<GitResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('git', [...HARDENING, ...args], { cwd: repo, env: gitEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(spawnFailure(repo, e)));
    child.on('close', (code) => {
      const result = { code: code ?? 128, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') };
      if (result.code !== 0 && !opts.allowFail) reject(gitFailure(repo, args, result));
      else resolvePromise(result);
    });
    // A git that exits before reading all its input closes the pipe; its exit code says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** spawn reports a missing working directory as a missing git: tell the two apart. */
function spawnFailure(repo: string, e: Error): RatchetError {
  if (!existsSync(repo)) return new RatchetError('git_state', `The repository directory ${repo} does not exist.`, 'Point ratchet at an existing repository with --repo.');
  return new RatchetError('git_state', `Could not run git: ${e.message}`, 'Install git and make sure it is on PATH, then call the tool again.');
}

function gitFailure(repo: string, args: string[], result: GitResult): RatchetError {
  return new RatchetError(
    'git_state',
    `git ${args[0]} failed in ${repo}: ${result.stderr.trim() || `exit code ${result.code}`}`,
    'Check that the repo is a healthy git work tree (`git status` there), then call the tool again.',
    { args, exitCode: result.code },
  );
}

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

  /** Untracked files, git-ignored ones included (run outputs usually are). */
  async untrackedFiles(): Promise<string[]> {
    return (await this.lsFiles(['--others'])).filter((p) => !p.endsWith('/'));
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
  private async syncIndex(rev: string): Promise<void> {
    await runGit(this.repo, ['read-tree', rev]);
  }

  /**
   * Puts the edit surface (editable, not protected, not a declared output) of the working tree back
   * at `commit`, writing its blobs' exact bytes, and deletes surface files the commit lacks, ignored
   * ones included; then points the index at `commit`. Files outside the surface are not touched
   * (protected ones are restored from their pins by the caller). Returns the deleted paths.
   */
  async resetTo(commit: string, editable: string[], protectedGlobs: string[], outputs: string[] = []): Promise<string[]> {
    const inSurface = surfaceOf(editable, protectedGlobs, outputs);
    const target = new Map([...(await this.lsTree(commit))].filter(([path, e]) => inSurface(path) && e.mode !== '160000'));
    const onDisk = await walkFiles(this.repo, inSurface);
    const current = await this.hashFiles([...target.keys()], { write: false });
    const stale = [...target].filter(([path, e]) => !sameEntry(current.get(path), e));
    await this.writeEntries(this.repo, stale, { replace: true });
    const removed = onDisk.filter((p) => !target.has(p)).sort();
    for (const p of removed) await rm(join(this.repo, p), { force: true });
    await removeEmptyParents(this.repo, removed);
    await this.syncIndex(commit);
    return removed;
  }

  /**
   * Rewrites the working tree's files under `paths` to their content in `commit` (deleting those it
   * lacks), from git objects, so the real index and the branch are not touched. This is how a
   * repeat measures the best and then the candidate again in the same working tree.
   */
  async materialize(commit: string, paths: string[], _scratchDir?: string): Promise<void> {
    if (!paths.length) return;
    const wanted = new Set(paths);
    const entries = [...(await this.lsTree(commit))].filter(([p, e]) => wanted.has(p) && e.mode !== '160000');
    const present = new Set(entries.map(([p]) => p));
    for (const p of paths) if (!present.has(p)) await rm(join(this.repo, p), { force: true });
    await this.writeEntries(this.repo, entries, { replace: true });
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
    await this.writeEntries(dir, entries, { replace: false });
  }

  /**
   * Streams blobs from one `git cat-file --batch` process into files under `root`. Symlinks are
   * created last, so no file is ever written through a link this call made. With `replace`, an
   * existing file, link or directory at a path is replaced (written beside it, then renamed over).
   */
  private async writeEntries(root: string, entries: [string, TreeEntry][], opts: { replace: boolean }): Promise<void> {
    if (!entries.length) return;
    for (const [path] of entries) assertSafePath(path);
    const links: { path: string; target: Buffer }[] = [];
    const dirs = new Set<string>();
    const ensureDir = async (path: string) => {
      const parent = dirname(path);
      if (parent === '.' || dirs.has(parent)) return;
      if (opts.replace) await replaceNonDirectoryAncestors(root, parent);
      await mkdir(join(root, parent), { recursive: true });
      dirs.add(parent);
    };
    await this.catBlobs(
      entries.map(([, e]) => e.oid),
      async (i, content) => {
        const [path, e] = entries[i]!;
        if (e.mode === '120000') {
          links.push({ path, target: await content.all() });
          return;
        }
        await ensureDir(path);
        const abs = join(root, path);
        const dest = opts.replace ? join(dirname(abs), `.ratchet-write-${process.pid}-${randomBytes(6).toString('hex')}`) : abs;
        const mode = e.mode === '100755' ? 0o755 : 0o644;
        // Synchronous writes: a workspace is hundreds of small files, and a round trip to the thread pool per call costs more than the write.
        const fd = openSync(dest, 'wx', mode);
        try {
          for await (const chunk of content.chunks()) writeSync(fd, chunk);
          fchmodSync(fd, mode);
        } finally {
          closeSync(fd);
        }
        if (opts.replace) await replaceWith(dest, abs);
      },
    );
    for (const { path, target } of links) {
      await ensureDir(path);
      const abs = join(root, path);
      if (!opts.replace) {
        await symlink(target.toString('utf8'), abs);
        continue;
      }
      const dest = join(dirname(abs), `.ratchet-link-${process.pid}-${randomBytes(6).toString('hex')}`);
      await symlink(target.toString('utf8'), dest);
      await replaceWith(dest, abs);
    }
  }

  /**
   * Feeds object ids to one `cat-file --batch` and hands each object's bytes to `onBlob` in order,
   * verifying every object's content against its id.
   */
  private async catBlobs(oids: string[], onBlob: (i: number, content: BlobContent) => Promise<void>): Promise<void> {
    const child = spawn('git', [...HARDENING, 'cat-file', '--batch', '--buffer'], { cwd: this.repo, env: gitEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    const exited = new Promise<number>((res) => child.on('close', (code) => res(code ?? 128)));
    child.on('error', () => {}); // the exit code below reports it
    child.stdin.on('error', () => {});
    child.stdin.end(oids.map((o) => `${o}\n`).join(''));
    const reader = new ByteReader(child.stdout);
    try {
      for (let i = 0; i < oids.length; i++) {
        const header = (await reader.line()).toString('utf8');
        const m = /^([0-9a-f]+) (\w+) (\d+)$/.exec(header);
        if (!m || m[2] !== 'blob') {
          throw new RatchetError('git_state', `git cat-file could not read blob ${oids[i]}: ${header || stderr.join('')}`, 'Run `git fsck` in the repo to find damaged objects.');
        }
        const size = Number(m[3]);
        const hash = createHash(oids[i]!.length === 64 ? 'sha256' : 'sha1').update(`blob ${size}\0`);
        let consumed = false;
        const content: BlobContent = {
          chunks: async function* () {
            consumed = true;
            for await (const chunk of reader.take(size)) {
              hash.update(chunk);
              yield chunk;
            }
          },
          all: async () => {
            const parts: Buffer[] = [];
            for await (const chunk of content.chunks()) parts.push(chunk);
            return Buffer.concat(parts);
          },
        };
        await onBlob(i, content);
        if (!consumed) for await (const _ of content.chunks());
        await reader.take(1).next(); // the newline after each object
        if (hash.digest('hex') !== oids[i]) {
          throw new RatchetError('git_state', `Object ${oids[i]} does not match its content: the object store was tampered with or is damaged.`, 'Run `git fsck` in the repo, and do not keep any result measured from it.');
        }
      }
    } finally {
      child.stdout.destroy();
      if (child.exitCode === null) child.kill();
      await exited;
    }
  }

  /** A bundle of `refs` at `file`, so they can be restored after a `git gc` or a deleted ref. */
  async bundle(file: string, refs: string[]): Promise<void> {
    if (!refs.length) throw new RatchetError('invalid_argument', 'A bundle needs at least one ref.', 'Pass the refs to save.');
    await runGit(this.repo, ['bundle', 'create', '--quiet', file, ...refs]);
  }
}

interface BlobContent {
  chunks(): AsyncGenerator<Buffer>;
  all(): Promise<Buffer>;
}

/** Pull-based reads from a stream: whole lines, or exactly n bytes as chunks. */
class ByteReader {
  private buffered: Buffer[] = [];
  private readonly iterator: AsyncIterator<Buffer>;
  private ended = false;

  constructor(stream: NodeJS.ReadableStream) {
    this.iterator = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.buffered.push(next.value);
    return true;
  }

  async line(): Promise<Buffer> {
    for (;;) {
      const joined = this.buffered.length > 1 ? Buffer.concat(this.buffered) : (this.buffered[0] ?? Buffer.alloc(0));
      this.buffered = joined.length ? [joined] : [];
      const nl = joined.indexOf(10);
      if (nl >= 0) {
        this.buffered = nl + 1 < joined.length ? [joined.subarray(nl + 1)] : [];
        return joined.subarray(0, nl);
      }
      if (!(await this.fill())) return joined;
    }
  }

  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!this.buffered.length && !(await this.fill())) throw new Error('git cat-file ended early');
      const head = this.buffered[0]!;
      if (head.length <= left) {
        this.buffered.shift();
        left -= head.length;
        yield head;
      } else {
        this.buffered[0] = head.subarray(left);
        yield head.subarray(0, left);
        left = 0;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Files
// ------------------------------------------------------------------------------------------------

/** ratchet's own state and git's; never part of a commit ratchet builds from the working tree. */
export function isInternal(path: string): boolean {
  return ['.git', '.ratchet'].some((dir) => path === dir || path.startsWith(`${dir}/`));
}

function surfaceOf(editable: string[], protectedGlobs: string[], outputs: string[]): (path: string) => boolean {
  const isEditable = globMatcher(editable);
  const isProtected = globMatcher([...protectedGlobs, 'ratchet.json']);
  const isOutput = globMatcher(outputs);
  return (p) => isEditable(p) && !isProtected(p) && !isOutput(p) && !isInternal(p);
}

function sameEntry(a: TreeEntry | undefined, b: TreeEntry): boolean {
  return a !== undefined && a.oid === b.oid && a.mode === b.mode;
}

/**
 * Files and symlinks under `root` for which `keep` holds, found by reading directories (ignore
 * files play no part). Symlinked directories are not followed; nested repositories are not entered.
 */
async function walkFiles(root: string, keep: (path: string) => boolean): Promise<string[]> {
  const found: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    const entries = await readdir(rel ? join(root, rel) : root, { withFileTypes: true }).catch(() => []);
    if (rel && entries.some((e) => e.name === '.git')) return;
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (isInternal(path)) continue;
      if (entry.isDirectory()) await visit(path);
      else if ((entry.isFile() || entry.isSymbolicLink()) && keep(path)) found.push(path);
    }
  };
  await visit('');
  return found.sort();
}

/** A path from a tree that would write outside the target directory, or into a .git, is refused. */
function assertSafePath(path: string): void {
  const bad = path.split('/').some((part) => part === '' || part === '.' || part === '..' || part.toLowerCase() === '.git');
  if (bad || isAbsolute(path)) {
    throw new RatchetError('git_state', `Refusing to write ${JSON.stringify(path)}: the path leaves the directory or enters .git.`, 'The commit was crafted by hand; do not use it.');
  }
}

/** Each ancestor of `dir` under `root` that is a symlink or a file is removed, so the directory can be made there. */
async function replaceNonDirectoryAncestors(root: string, dir: string): Promise<void> {
  const parts = dir.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const abs = join(root, ...parts.slice(0, i));
    const st = await lstat(abs).catch(() => null);
    if (st === null) return;
    if (!st.isDirectory()) await rm(abs, { force: true });
  }
}

/** Renames `source` over `dest`; a directory standing at `dest` is removed first (rename cannot replace it). */
async function replaceWith(source: string, dest: string): Promise<void> {
  if ((await lstat(dest).catch(() => null))?.isDirectory()) await rm(dest, { recursive: true, force: true });
  await rename(source, dest);
}

/** Directories left empty by deleting `paths` are removed too, as git does. */
async function removeEmptyParents(root: string, paths: string[]): Promise<void> {
  const dirs = new Set<string>();
  for (const p of paths) for (let d = dirname(p); d !== '.'; d = dirname(d)) dirs.add(d);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await rmdir(join(root, d)).catch(() => {});
}

/** C-quotes a path for a line-based git input when it needs it (a control character, a quote or a backslash). */
export function quotePath(path: string): string {
  if (!/[\x00-\x1f\x7f"\\]/.test(path)) return path;
  const escaped = path.replace(/[\x00-\x1f\x7f"\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`));
  return `"${escaped}"`;
}
