// The default agent, Claude Code headless: the skill installed as a project skill, the answer and usage read from its JSON.
import { cpSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import type { Usage } from './usage.js';

// acceptEdits: the skill may be asked to write files (fileExists), and nobody is there to approve an edit in headless mode.
export const CLAUDE_COMMAND = 'claude -p --output-format json --permission-mode acceptEdits';

/** Claude Code finds project skills at .claude/skills/<name>/SKILL.md under its working dir. */
export function installSkill(workDir: string, skill: string, repoName: string): string {
  const name = skillName(skill, repoName);
  const target = join(workDir, '.claude', 'skills', name);
  if (statSync(skill).isDirectory()) {
    cpSync(skill, target, { recursive: true });
  } else {
    mkdirSync(target, { recursive: true });
    cpSync(skill, join(target, 'SKILL.md'));
  }
  return name;
}

/** The frontmatter's name when it is a valid skill name, else the folder's or file's own name. */
export function skillName(skill: string, repoName: string): string {
  const isDir = statSync(skill).isDirectory();
  const file = isDir ? join(skill, 'SKILL.md') : skill;
  const declared = frontmatterName(file);
  if (declared) return declared;
  const stem = isDir ? basename(skill) : basename(skill, extname(skill));
  // A bare SKILL.md at the repo root is named for the repo.
  const fallback = stem.toLowerCase() === 'skill' ? repoName : stem;
  return sanitize(fallback) || 'skill';
}

function frontmatterName(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text)?.[1];
  const name = front ? /^name:\s*["']?([^"'\r\n]+?)["']?\s*$/m.exec(front)?.[1] : undefined;
  return name && /^[a-z0-9][a-z0-9-]{0,63}$/.test(name) ? name : null;
}

function sanitize(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
}

export type ClaudeAnswer = { ok: true; output: string; usage?: Usage } | { ok: false; reason: string };

/** `claude -p --output-format json` prints one result object (with --verbose, a list of messages ending in it). */
export function readClaudeAnswer(stdout: string): ClaudeAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return { ok: false, reason: 'claude did not print JSON; is `claude` Claude Code, and does `claude -p --output-format json` work here?' };
  }
  const result = (Array.isArray(parsed) ? [...parsed].reverse().find((m) => isRecord(m) && m.type === 'result') : parsed) as unknown;
  if (!isRecord(result) || typeof result.result !== 'string') return { ok: false, reason: 'claude printed JSON without a "result" text' };
  if (result.is_error === true) return { ok: false, reason: `claude reported an error: ${String(result.subtype ?? result.result).slice(0, 300)}` };
  return { ok: true, output: result.result, usage: claudeUsage(result) };
}

function claudeUsage(result: Record<string, unknown>): Usage | undefined {
  const usage: Usage = {};
  if (typeof result.total_cost_usd === 'number' && Number.isFinite(result.total_cost_usd)) usage.costUsd = result.total_cost_usd;
  const counts = isRecord(result.usage) ? result.usage : {};
  const tokens = [counts.input_tokens, counts.output_tokens].filter((n): n is number => typeof n === 'number' && Number.isFinite(n));
  if (tokens.length) usage.tokens = tokens.reduce((a, b) => a + b, 0);
  return Object.keys(usage).length ? usage : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
