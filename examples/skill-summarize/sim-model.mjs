#!/usr/bin/env node
// A simulated model for offline runs: it writes a brief whose habits depend on phrases in the skill, each followed only by chance.
//
// The agent command contract of `ratchet eval`: the prompt arrives on stdin, the case's files sit in the working
// directory, RATCHET_SKILL names the skill, and the output goes to stdout. A real model follows an instruction
// most of the time, not always, and does some things unasked; so does this one. Each habit below is taken with a
// probability per call (an instruction is followed less often on longer inputs), so pass and fail are binomial
// across trials, as they are with Claude. Phrases it does not recognise change nothing, as a neutral edit would.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What the skill asks for, read from its text. A match is loose on purpose: a person rewording it still counts. */
export function readSkill(text) {
  const cap = /\b(?:at most|no more than|under|fewer than|maximum of)\s+(\d+)\s+words\b/i.exec(text);
  const antiList = /\b(?:avoid|no|never|without|not use)\b[^.\n]{0,25}\b(?:lists?|bullets?)\b/i.test(text);
  return {
    leadWithDecision: /\b(?:start|begin|lead|open)s?\b[^.\n]{0,30}\b(?:decision|conclusion|bottom line|key finding)\b/i.test(text),
    bullets: !antiList && /\bbullets?\b|\bbulleted\b/i.test(text),
    antiList,
    ownersAndDates: /\bowners?\b[^.\n]{0,40}\b(?:dates?|due|deadlines?)\b/i.test(text),
    wordCap: cap ? Number(cap[1]) : null,
    noPreamble: /\b(?:no|without|skip|never)\b[^.\n]{0,20}\b(?:preamble|intro|introduction|pleasantries)\b/i.test(text),
    jsonOnly: /\bjson\b[^.\n]{0,40}\bonly\b|\bonly\b[^.\n]{0,40}\bjson\b/i.test(text),
    saveToFile: /\b(?:save|write)\b[^.\n]{0,40}\bfile\b/i.test(text),
    backgroundFirst: /\b(?:start|begin|open)s?\b[^.\n]{0,30}\b(?:background|context)\b/i.test(text),
    quoteVerbatim: /\bverbatim\b|\bquote\b/i.test(text),
    offerHelp: /\boffer\w*\b[^.\n]{0,30}\b(?:help|more)\b|\bask (?:if|whether)\b/i.test(text),
  };
}

const HEADER = /^(?:action items?|actions?|next steps|ais|to ?do|follow-ups?|attendees|present|attending)\b/i;
const ACTION = /^[-*]\s*([A-Z][a-z]+)\s+(?:to|will)\s+(.+?)\.?$/;
const HEADLINE = /\b(?:decided|decision|agreed|going with|picked|chose|found|show|shows|concluded)\b/i;

/** The notes as a model would read them: a title, the points in order, the one that matters, and the action items. */
export function readNotes(text) {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const actions = [];
  const points = [];
  lines.forEach((line, i) => {
    const action = ACTION.exec(line);
    if (action) {
      const [, owner, rest] = action;
      const due = /\s+by\s+(.+)$/.exec(rest);
      actions.push({ owner, task: due ? rest.slice(0, due.index) : rest, due: due ? due[1] : null });
    } else if (HEADER.test(line) || line.startsWith('#') || (i === 0 && !/[.!?]$/.test(line)) || /[?:]$/.test(line)) {
      // a title, a section header or the request itself: not content
    } else {
      points.push(...line.replace(/^[-*]\s*/, '').split(/(?<=[.!?])\s+(?=[A-Z])/));
    }
  });
  const headline = points.find((p) => HEADLINE.test(p)) ?? points[0] ?? '';
  return { points, headline, actions, article: actions.length === 0 };
}

/** The input: the case's files in the working directory, else the prompt itself (notes pasted inline). */
function inputText(prompt, dir) {
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(txt|md)$/.test(name)) files.push(readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return files.length ? files.join('\n') : prompt.split('\n').slice(1).join('\n');
}

const words = (s) => s.split(/\s+/).filter(Boolean).length;
const clean = (s) => s.replace(/^(?:decision|decided)\s*:\s*/i, '').replace(/^./, (c) => c.toUpperCase());

/** One answer. `random` is a () => [0, 1) source; everything else is read from the arguments. */
export function respond({ skill, prompt, input, random = Math.random }) {
  const want = readSkill(skill);
  const notes = readNotes(input);
  // Longer inputs are harder: an instruction is followed a little less often (habits the skill did not ask for are not).
  const difficulty = Math.min(0.25, Math.max(0, (words(input) - 90) / 300));
  const does = (p) => random() < p;
  const follows = (asked, p, otherwise) => (asked ? random() < p * (1 - difficulty) : random() < otherwise);

  const leads = follows(want.leadWithDecision, 0.95, 0.2);
  const preamble = want.noPreamble ? !follows(true, 0.95, 0) : does(leads ? 0.1 : 0.35);
  const bullets = want.antiList ? !follows(true, 0.98, 0) : follows(want.bullets, 0.95, 0.25);
  const named = (p) => follows(want.ownersAndDates, 0.97, p);
  const actions = notes.actions.map((a) => ({ ...a, owner: named(0.55) ? a.owner : null, due: a.due && named(0.4) ? a.due : null }));
  const background = follows(want.backgroundFirst, 0.9, 0);
  const quoting = follows(want.quoteVerbatim, 0.9, 0);
  const signOff = follows(want.offerHelp, 0.9, 0.1);
  // A summary keeps most of the points; which ones it drops varies from call to call.
  let points = notes.points.filter((p) => p !== notes.headline || !leads).filter(() => random() < 0.85);
  if (!leads && !points.includes(notes.headline)) points.splice(Math.min(2, points.length), 0, notes.headline);
  if (random() < 0.5) points = points.map((p) => p.replace(/[;,] (?:but|and|which|while) .*?([.!?])$/, '$1'));

  if (/\bjson\b/i.test(prompt)) return json(notes, actions, follows(want.jsonOnly, 0.95, 0.35));

  const render = (body, acts) => {
    const out = [];
    if (preamble) out.push(notes.article ? 'Here is a short brief of the article:' : 'Here is a summary of the meeting notes:');
    if (background) out.push(`Background: ${notes.points.slice(0, 2).join(' ')}`);
    if (leads) out.push(`${notes.article ? 'Bottom line' : 'Decision'}: ${clean(notes.headline)}`);
    if (body.length) out.push(body.map(clean).join(' '));
    if (acts.length && bullets) out.push(['Action items:', ...acts.map((a) => `- ${a.owner ? `${a.owner}: ` : ''}${a.task}${a.due ? ` (by ${a.due})` : ''}`)].join('\n'));
    else if (acts.length) out.push(`Next steps: ${acts.map((a) => `${a.owner ? `${a.owner} will ` : ''}${a.task}${a.due ? ` by ${a.due}` : ''}`).join('; ')}.`);
    if (quoting) out.push(`In their words: ${notes.points.filter((p) => p !== notes.headline).slice(-2).map((p) => `"${p}"`).join(' ')}`);
    if (signOff) out.push("Let me know if you'd like more detail on any point.");
    return out.join('\n\n');
  };
  let body = points;
  let acts = actions;
  if (follows(want.wordCap !== null, 0.9, 0)) {
    // Trimming cuts background first, then the last action items, then the point itself: a tight cap costs content.
    const over = () => words(render(body, acts)) > want.wordCap;
    const lastMinor = () => body.findLastIndex((p) => p !== notes.headline);
    while (over() && lastMinor() !== -1) body = body.filter((_, i) => i !== lastMinor());
    while (over() && acts.length) acts = acts.slice(0, -1);
    while (over() && body.length) body = body.slice(0, -1);
  }
  const brief = render(body, acts);
  const file = /\bsave (?:it|the brief)? ?(?:as|to|in) ([\w.-]+\.md)\b/i.exec(prompt)?.[1];
  return { text: brief, file: file && follows(want.saveToFile, 0.95, 0.55) ? file : null };
}

function json(notes, actions, bare) {
  const doc = JSON.stringify(
    { decision: clean(notes.headline), actions: actions.map((a) => ({ owner: a.owner ?? 'unassigned', task: a.task, due: a.due ?? 'not set' })) },
    null,
    2,
  );
  return { text: bare ? doc : `Here is the JSON for the tracker:\n\n\`\`\`json\n${doc}\n\`\`\``, file: null };
}

/** The skill's text: the file itself, or SKILL.md inside a skill folder. */
function skillText(path) {
  if (!path) return '';
  return readFileSync(statSync(path).isDirectory() ? join(path, 'SKILL.md') : path, 'utf8');
}

/** One call as the agent contract makes it: the prompt, the skill's text and the working dir; returns what goes to stdout. */
export function answer({ skill, prompt, dir, random = Math.random }) {
  const input = inputText(prompt, dir);
  const { text, file } = respond({ skill, prompt, input, random });
  if (!file) return { output: `${text}\n`, input, text };
  writeFileSync(join(dir, file), `${text}\n`);
  return { output: `${text}\n\nSaved the brief to ${file}.\n`, input, text };
}

async function main() {
  let prompt = '';
  for await (const chunk of process.stdin) prompt += chunk;
  const skill = skillText(process.env.RATCHET_SKILL);
  const { output, input, text } = answer({ skill, prompt, dir: process.cwd() });
  process.stdout.write(output);
  // Usage as a real agent reports it: tokens in and out, roughly 1.3 per word.
  if (process.env.RATCHET_USAGE_FILE) {
    writeFileSync(process.env.RATCHET_USAGE_FILE, JSON.stringify({ tokens: Math.round(1.3 * (words(skill) + words(prompt) + words(input) + words(text))) }));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
