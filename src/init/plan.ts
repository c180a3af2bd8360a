// What a preset decides for a repo (config, starter files, ignores, notes), and the template files it draws them from.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PRESET_NAMES = ['skill', 'train', 'bench'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface InitPlan {
  /** ratchet.json without `$schema`, which the command adds once it knows where the schema is. */
  config: Record<string, unknown>;
  /** Starter files; the command writes each only where the repo lacks it. */
  files: { path: string; content: string }[];
  /** .gitignore lines for what runs write, so a local try leaves `git status` clean. */
  ignore: string[];
  /** What was chosen and why, one line each, for stderr. */
  notes: string[];
  /** A command that tries the setup once by hand, or null. */
  tryCommand: string | null;
}

/** What a preset may look at besides the repo: the PATH its tools are found on. */
export interface InitEnv {
  path: string;
}

export interface Preset {
  name: PresetName;
  plan: (repo: string, env: InitEnv) => InitPlan;
}

// presets/ sits beside dist/ and src/, so this resolves from either.
const PRESETS_DIR = fileURLToPath(new URL('../../presets/', import.meta.url));

/** A template's text with each `{{key}}` replaced; a placeholder without a value is a bug in the preset, so it throws. */
export function template(preset: PresetName, path: string, values: Record<string, string> = {}): string {
  const text = readFileSync(join(PRESETS_DIR, preset, path), 'utf8');
  return text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`presets/${preset}/${path}: no value for {{${key}}}`);
    return value;
  });
}

/** Starter files from presets/<preset>/, at the same paths in the repo; `values` fills a file's placeholders. */
export function starterFiles(preset: PresetName, paths: string[], values: Record<string, Record<string, string>> = {}): InitPlan['files'] {
  return paths.map((path) => ({ path, content: template(preset, path, values[path]) }));
}

/** Whether an executable called `name` is in one of PATH's folders. */
export function onPath(name: string, path: string): boolean {
  return path.split(delimiter).some((dir) => {
    if (!dir) return false; // an empty entry means the current folder, which says nothing about the machine
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The paths among `paths` that exist in the repo. */
export function present(repo: string, paths: string[]): string[] {
  return paths.filter((path) => existsSync(join(repo, path)));
}
