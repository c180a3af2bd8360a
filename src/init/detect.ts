// Which preset fits a repo, from what is in it: a skill, a training script or notebook, or a project with a build.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PresetName } from './plan.js';

export interface Detection {
  preset: PresetName;
  /** Why, as the end of "preset X, because …". */
  why: string;
}

/** A skill to improve: SKILL.md at the root, else the first skill folder under skills/ or .claude/skills/. */
export interface FoundSkill {
  /** The skill as the suite names it: "SKILL.md", or a folder such as "skills/brief". */
  path: string;
  folder: boolean;
  /** Other skills found, which the user may prefer. */
  others: string[];
}

export function findSkill(repo: string): FoundSkill | null {
  if (existsSync(join(repo, 'SKILL.md'))) return { path: 'SKILL.md', folder: false, others: [] };
  const folders = ['skills', '.claude/skills'].flatMap((parent) =>
    subfolders(join(repo, parent))
      .filter((name) => existsSync(join(repo, parent, name, 'SKILL.md')))
      .map((name) => `${parent}/${name}`),
  );
  const [first, ...others] = folders;
  return first ? { path: first, folder: true, others } : null;
}

export function detectPreset(repo: string): Detection | null {
  const skill = findSkill(repo);
  if (skill) return { preset: 'skill', why: skill.folder ? `${skill.path}/SKILL.md is a skill` : 'SKILL.md is at the repo root' };
  for (const file of ['train.py', 'prepare.py']) if (existsSync(join(repo, file))) return { preset: 'train', why: `${file} is here` };
  const notebook = torchNotebook(repo);
  if (notebook) return { preset: 'train', why: `the notebook ${notebook} uses torch` };
  for (const file of ['package.json', 'Makefile']) if (existsSync(join(repo, file))) return { preset: 'bench', why: `${file} is here` };
  if (isFolder(join(repo, 'bench'))) return { preset: 'bench', why: 'a bench/ folder is here' };
  return null;
}

// Saved outputs can make a notebook huge; one past this size is skipped rather than read whole.
const MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024;

/** A notebook at the root or one folder down that imports torch. */
export function torchNotebook(repo: string): string | null {
  const candidates = [
    ...notebooks(repo, ''),
    ...subfolders(repo)
      .filter((name) => !name.startsWith('.') && name !== 'node_modules')
      .flatMap((name) => notebooks(repo, name)),
  ];
  return candidates.find((path) => statSync(join(repo, path)).size <= MAX_NOTEBOOK_BYTES && /\b(?:import|from) torch\b/.test(readFileSync(join(repo, path), 'utf8'))) ?? null;
}

function notebooks(repo: string, dir: string): string[] {
  return entries(join(repo, dir))
    .filter((name) => name.endsWith('.ipynb') && !isFolder(join(repo, dir, name)))
    .map((name) => (dir ? `${dir}/${name}` : name));
}

function subfolders(dir: string): string[] {
  return entries(dir).filter((name) => isFolder(join(dir, name)));
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
