// `ratchet init [--preset skill|train|bench] [--force]`: writes ratchet.json and a preset's starter files.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CONFIG_FILE, parseConfig, starterConfig } from '../core/config.js';
import { Git } from '../core/git.js';
import { LOCAL_SCHEMA, schemaReference } from '../schema-file.js';
import { detectPreset } from './detect.js';
import { PRESET_NAMES, type InitPlan } from './plan.js';
import { isPresetName, PRESETS } from './presets.js';

export interface InitOptions {
  preset?: string;
  force: boolean;
}

export async function runInit(repo: string, opts: InitOptions): Promise<number> {
  if (opts.preset !== undefined && !isPresetName(opts.preset)) {
    process.stderr.write(`ratchet: unknown preset "${opts.preset}". Use one of: ${PRESET_NAMES.join(', ')}; or leave --preset out and ratchet picks one from the repo.\n`);
    return 2;
  }
  const file = join(repo, CONFIG_FILE);
  if (existsSync(file) && !opts.force) {
    process.stderr.write(`ratchet: ${CONFIG_FILE} already exists. Edit it, or pass --force to overwrite it (starter files already in the repo are never overwritten).\n`);
    return 1;
  }
  const detected = opts.preset === undefined ? detectPreset(repo) : null;
  const name = opts.preset ?? detected?.preset;
  const plan = name ? PRESETS[name].plan(repo, { path: process.env.PATH ?? '' }) : genericPlan();
  process.stderr.write(
    name
      ? `ratchet init: preset ${name}, because ${detected ? detected.why : `you passed --preset ${name}`}.\n`
      : `ratchet init: no preset fits: there is no SKILL.md, train.py, torch notebook, package.json, Makefile or bench/ here. For a runnable starter: ratchet init --force --preset ${PRESET_NAMES.join('|')}.\n`,
  );

  // A preset that writes an invalid config is a bug here, not the user's: fail before anything is written.
  parseConfig(plan.config, `the ${name ?? 'starter'} preset's ratchet.json`);
  const $schema = schemaReference(repo);
  // The schema copy lives in .ratchet/, which stays out of `git status` as it does once a server has run.
  if ($schema.includes(LOCAL_SCHEMA)) await new Git(repo).excludeFromGit('/.ratchet/').catch(() => undefined);
  writeFileSync(file, `${JSON.stringify({ $schema, ...plan.config }, null, 2)}\n`);

  const written = [CONFIG_FILE];
  const kept: string[] = [];
  for (const { path, content } of plan.files) {
    if (existsSync(join(repo, path))) {
      kept.push(path);
      continue;
    }
    mkdirSync(dirname(join(repo, path)), { recursive: true });
    writeFileSync(join(repo, path), content, { flag: 'wx' });
    written.push(path);
  }
  const ignored = addToGitignore(repo, plan.ignore);
  for (const note of plan.notes) process.stderr.write(`  ${note}\n`);
  process.stderr.write(`Wrote ${written.join(', ')}.\n`);
  if (kept.length) process.stderr.write(`Kept what was already there: ${kept.join(', ')}.\n`);
  if (ignored.length) process.stderr.write(`Added to .gitignore: ${ignored.join(', ')}.\n`);
  process.stderr.write(`${nextStep(plan, name !== undefined)}\n`);
  return 0;
}

/** No preset fits: the generic starter, shaped like autoresearch, to be edited for the project. */
function genericPlan(): InitPlan {
  const { $schema: _, ...config } = starterConfig();
  return { config, files: [], ignore: [], notes: [], tryCommand: null };
}

function nextStep(plan: InitPlan, preset: boolean): string {
  if (!preset) return 'Next: set editable, protected, run.command and metric in ratchet.json for your project, then commit it.';
  const tryIt = plan.tryCommand ? `try it once by hand (\`${plan.tryCommand}\`), ` : '';
  return `Next: ${tryIt}commit these files (git add -A && git commit -m "ratchet config"), then start a session from your agent; \`ratchet status\` says what is missing.`;
}

/** Appends the lines .gitignore lacks (creating it if need be); returns those added. */
function addToGitignore(repo: string, lines: string[]): string[] {
  const file = join(repo, '.gitignore');
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const have = new Set(current.split(/\r?\n/).map((line) => line.trim()));
  const missing = lines.filter((line) => !have.has(line));
  if (missing.length) appendFileSync(file, `${current && !current.endsWith('\n') ? '\n' : ''}${missing.join('\n')}\n`);
  return missing;
}
