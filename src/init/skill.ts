// The skill preset: SKILL.md is the edit surface, an eval suite in evals/ is the pinned measure, pass_rate the metric.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findSkill } from './detect.js';
import { onPath, starterFiles, template, type Preset } from './plan.js';

const CASES = ['evals/cases/standup-notes.yaml', 'evals/cases/incident-thread.yaml', 'evals/cases/release-notes.yaml'];
/** The session ends once the agent's reported spend reaches this (USD); a night of evals is not free. */
const COST_CAP_USD = 25;
/** Credentials the agent under test may need, passed from the server's environment to the run step (run.passEnv). */
const PASSED_CREDENTIALS = ['ANTHROPIC_API_KEY', 'CLAUDE_CODE_OAUTH_TOKEN', 'OPENAI_API_KEY', 'CODEX_API_KEY'];

export const skillPreset: Preset = {
  name: 'skill',
  plan(repo, env) {
    const found = findSkill(repo);
    const skill = found?.path ?? 'SKILL.md';
    const editable = found?.folder ? `${skill}/**` : skill;
    const notes: string[] = [];
    const files = found ? [] : starterFiles('skill', ['SKILL.md']);
    if (!found) notes.push('No skill here yet: SKILL.md is a starter skill (a brief writer); replace it with yours.');
    else notes.push(`The skill under test is ${skill}${found.others.length ? `; also found ${found.others.join(', ')}: name another in evals/suite.yaml and ratchet.json's editable to switch` : ''}.`);

    if (existsSync(join(repo, 'evals'))) {
      notes.push(`evals/ already exists, so no example cases were added; check that evals/suite.yaml says skill: ${skill}.`);
    } else {
      files.push(...starterFiles('skill', ['evals/suite.yaml', ...CASES], { 'evals/suite.yaml': { skill: JSON.stringify(skill) } }));
      notes.push(`evals/ holds three example cases (release-notes is held out); write cases for what your skill must do.`);
    }
    files.push({ path: 'program.md', content: template('skill', 'program.md', { skill, editable: `\`${editable}\`` }) });

    notes.push(
      onPath('claude', env.path)
        ? 'Agent: Claude Code (`claude -p`), the suite\'s default; set agent: in evals/suite.yaml for another (e.g. "codex exec -").'
        : 'Agent: Claude Code (`claude -p`) is the default, but claude is not on PATH: install it, or set agent: in evals/suite.yaml to your model\'s command.',
    );
    notes.push(`Runs have a HOME of their own, so the agent under test cannot use your login: export one of ${PASSED_CREDENTIALS.join(', ')} (for Claude Code, \`claude setup-token\` prints a token) before starting your agent; run.passEnv hands it to the run step only.`);
    notes.push(`Harness errors are recorded (errors), not a constraint, so one flaky call cannot block a keep. The session stops at $${COST_CAP_USD} of reported cost (limits.maxCost).`);

    return {
      config: {
        editable: [editable],
        protected: ['evals/**'],
        run: {
          command: 'ratchet eval evals --collect .eval-out',
          // 3 cases x 3 trials, 4 at once, 300 s each at worst: three rounds, with room to spare.
          budgetSeconds: 1200,
          outputs: ['.eval-out/**'],
          network: true,
          // A run's HOME is its own, so the agent under test cannot read your login: it gets these, if set, and evaluate never does.
          passEnv: PASSED_CREDENTIALS,
        },
        evaluate: { command: 'ratchet eval evals --score .eval-out', budgetSeconds: 300 },
        metric: {
          name: 'pass_rate',
          direction: 'maximize',
          secondary: ['cases_passed', 'errors', 'held_out_pass_rate', 'tokens', 'cost_usd'],
        },
        decision: { rule: 'significant' },
        limits: { maxCost: { source: 'metric', metric: 'cost_usd', amount: COST_CAP_USD } },
      },
      files,
      ignore: ['/.eval-out/'],
      notes,
      tryCommand: 'ratchet eval evals',
    };
  },
};
