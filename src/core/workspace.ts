// Workspaces: each step runs in a fresh materialization of the commit it measures, never in the agent's tree.
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Git } from './git.js';
import { globDirMatcher, globMatcher } from './globs.js';
import { walk } from './walk.js';
import type { StepInput } from './executor/executor.js';

export type StepPhase = 'run' | 'evaluate';

export class Workspaces {
  constructor(
    private readonly root: string,
    private readonly git: Git,
  ) {}

  pathOf(id: number, phase: StepPhase): string {
    return join(this.root, `${id}-${phase}`);
  }

  /** A fresh directory holding exactly the commit's files (blob content as committed: no filters, no hooks). */
  async create(id: number, phase: StepPhase, commit: string): Promise<string> {
    const dir = this.pathOf(id, phase);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await this.git.materializeCommit(commit, dir);
    return dir;
  }

  /**
   * The run's declared outputs, copied read-only into the evaluate workspace: all evaluate may see of
   * the run. Regular files only: a symlink the run planted must not make ratchet copy what it points at.
   */
  async copyOutputs(from: string, to: string, outputs: string[]): Promise<string[]> {
    if (!outputs.length || !existsSync(from)) return [];
    const found = await walk(from, { enter: globDirMatcher(outputs), take: globMatcher(outputs), intoNested: true });
    const copied: string[] = [];
    for (const path of found.files) {
      if (!lstatSync(join(from, path)).isFile()) continue;
      const target = join(to, path);
      mkdirSync(dirname(target), { recursive: true });
      rmSync(target, { force: true });
      copyFileSync(join(from, path), target);
      chmodSync(target, 0o444);
      copied.push(path);
    }
    return copied;
  }

  /**
   * Declared inputs (data, a virtual environment, a model cache) appear at the same place in the
   * workspace. Inside a sandbox they are read-only bind mounts; without one, symlinks to the originals.
   */
  inputs(repo: string, workspace: string, inputs: string[], sandboxed: boolean): StepInput[] {
    const mounts: StepInput[] = [];
    for (const path of inputs) {
      const source = join(repo, path);
      if (!existsSync(source)) continue;
      const target = join(workspace, path);
      mounts.push({ source, target });
      if (sandboxed) continue;
      mkdirSync(dirname(target), { recursive: true });
      rmSync(target, { recursive: true, force: true });
      symlinkSync(source, target);
    }
    return mounts;
  }

  remove(id: number, phase: StepPhase): void {
    rmSync(this.pathOf(id, phase), { recursive: true, force: true });
  }

  /** Removes every workspace except those of the given experiments (in flight, or crashed and kept for inspection). */
  prune(keep: Set<number>): void {
    if (!existsSync(this.root)) return;
    for (const name of readdirSync(this.root)) {
      if (!keep.has(Number(name.split('-')[0]))) rmSync(join(this.root, name), { recursive: true, force: true });
    }
  }
}
