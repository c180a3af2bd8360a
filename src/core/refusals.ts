// Every refusal the loop can give, one named function each: what happened, and the one step that gets the caller unstuck.
import { RatchetError } from './errors.js';
import { formatNumber } from './format.js';
import type { Finding } from './integrity.js';
import { finishedSentence } from './limits.js';
import type { SandboxReport } from './executor/executor.js';
import type { ConstraintCheck, DecisionReport } from './views.js';

const fmt = formatNumber;

// ---------------------------------------------------------------- session and repo

export const noSession = () =>
  new RatchetError('no_session', 'No ratchet session is active in this repo.', 'Call start_session first (it creates the branch and runs the baseline).');

export const unknownExperiment = (id: number, tag?: string) =>
  new RatchetError('unknown_experiment', `No experiment ${id}${tag ? ` in session ${tag}` : ''}.`, 'Call list_experiments to see the ids.');

export const noExperimentYet = () =>
  new RatchetError('unknown_experiment', 'This session has no experiment yet.', 'Call start_session, or run_experiment after editing.');

/** Past a cap of limits, or after the user's stop: nothing new runs, decisions on what ran stay allowed. */
export const sessionFinished = (tag: string, finished: { reason: string; stopped: boolean }) =>
  new RatchetError(
    'session_finished',
    `${finishedSentence(tag, finished)} No more experiments run in it.`,
    'Stop here: keep or revert a measured experiment if one awaits a decision, then summarise the session for the user (status shows where it ended).',
    { tag, ...finished },
  );

/** A finished session is not replaced by the agent: the caps would mean nothing if a new session reset them. */
export const finishedSessionNotReplaced = (tag: string, finished: { reason: string; stopped: boolean }) =>
  new RatchetError(
    'session_finished',
    `${finishedSentence(tag, finished)} A new session would reset its caps, so the agent cannot start one over it.`,
    'Stop here and summarise the session for the user. To run another one, the user closes this session with `ratchet close` in a terminal; start_session then works.',
    { tag, ...finished },
  );

export const notClosable = (tag: string, id: number, why: string) =>
  new RatchetError('busy', `Session ${tag} cannot be closed while experiment ${id} ${why}.`, 'Let the agent keep or revert it, or run `ratchet stop --cancel`, then `ratchet close` again.');

export const lockedByAnotherServer = (holder: { pid: number; since: string }) =>
  new RatchetError(
    'locked',
    `Another ratchet server (pid ${holder.pid}, since ${holder.since}) is driving this repo; this one can only read.`,
    'Use the agent session that started the loop, or stop the other one (it exits when its client closes) and restart this server.',
  );

export const invalidTag = (tag: string) =>
  new RatchetError('invalid_argument', `"${tag}" cannot be part of a git branch name.`, 'Use letters, digits, "-" and "_", e.g. "nov23" or "lr-sweep".');

export const tagTaken = (tag: string) =>
  new RatchetError('session_exists', `Tag "${tag}" is taken: branch ratchet/${tag} or its session already exists.`, 'Pick a fresh tag, or omit it to get a free date-based one.');

export const sessionActive = (tag: string) =>
  new RatchetError(
    'session_exists',
    `Session ${tag} is active; a new session would end it.`,
    `Keep working in ${tag}, or call start_session with replace: true to end it (it stays recorded in the ledger and under refs/ratchet/${tag}/).`,
  );

export const notOnBranch = (branch: string | null, sessionBranch: string) =>
  new RatchetError(
    'git_state',
    `HEAD is on ${branch ?? 'a detached commit'}, not on the session branch ${sessionBranch}.`,
    `Run \`git checkout ${sessionBranch}\` (your edits carry over), then call the tool again.`,
  );

export const branchMoved = (branch: string, tip: string | null, best: string) =>
  new RatchetError(
    'git_state',
    `Branch ${branch} is at ${tip?.slice(0, 7) ?? 'nothing'}, but the session's best commit is ${best.slice(0, 7)}: it was moved outside ratchet.`,
    `Run \`git update-ref refs/heads/${branch} ${best}\` to put the branch back (your files stay as they are), then call the tool again; or start a new session from here.`,
  );

export const gpuUnavailable = (perRun: number, detail: string) =>
  new RatchetError(
    'gpu_unavailable',
    `ratchet.json requires ${perRun} GPU(s) per run, but nvidia-smi ${detail}.`,
    'Run on a machine where `nvidia-smi` lists the GPUs, or set gpu.required to false in ratchet.json for a CPU run.',
  );

export const sandboxRequired = (report: SandboxReport) =>
  new RatchetError(
    'sandbox_unavailable',
    `ratchet.json sets sandbox: "required", but no sandbox works here: ${report.why}`,
    report.install ? `Install one (\`${report.install}\`), then call start_session again; or set sandbox to "auto".` : 'Run on Linux with bubblewrap, or set sandbox to "auto".',
  );

export const tampered = (findings: Finding[]) =>
  new RatchetError(
    'tampered',
    `ratchet's evidence was changed outside ratchet, so no keep is trusted until a person looks:\n${findings.map((f) => `  - ${f.what}`).join('\n')}`,
    'Ask the user to run `ratchet verify` (re-measures the kept commits) and then `ratchet integrity --accept` if the findings are understood; until then keep is refused.',
    { findings },
  );

// ---------------------------------------------------------------- running

export const busy = (id: number) =>
  new RatchetError('busy', `Experiment ${id} is still running; one experiment runs at a time.`, `Call wait_experiment {id: ${id}} until it finishes, or cancel_experiment {id: ${id}}. To run several at once, set "parallel" in ratchet.json.`);

export const waitNeedsTarget = () =>
  new RatchetError('invalid_argument', 'wait_experiment needs an experiment id, or next: true to wait for whichever experiment in flight ends first.', 'Pass {id: <experiment id>} or {next: true}.');

export const nothingInFlight = () =>
  new RatchetError('not_decidable', 'No experiment is running or queued, so there is nothing to wait for.', 'Call status, or run_experiment to start one.');

export const busyForRevert = (id: number) =>
  new RatchetError('busy', `Experiment ${id} is still running.`, `Call cancel_experiment {id: ${id}} first, or wait_experiment until it ends.`);

export const awaitingDecision = (id: number) =>
  new RatchetError(
    'awaiting_decision',
    `Experiment ${id} is measured and awaits a decision.`,
    `Call keep {id: ${id}} if read_metric shows it improved, otherwise revert {id: ${id}}; then run the next experiment.`,
  );

export const awaitingDecisionBeforeSession = (id: number, tag: string) =>
  new RatchetError(
    'awaiting_decision',
    `Experiment ${id} of session ${tag} is measured and awaits a decision; a new session would carry its edit into the new baseline.`,
    `Call keep {id: ${id}} or revert {id: ${id}} first, then start_session.`,
  );

export const uncommittedOutsideSurface = (violations: { path: string; detail: string }[]) =>
  new RatchetError(
    'surface_violation',
    `The working tree has uncommitted changes outside the edit surface, so the baseline would not be a committed state:\n${violations.map((v) => `  - ${v.path}: ${v.detail}`).join('\n')}`,
    "Commit those changes if they belong to the experiment's setup (protected files are pinned as committed), or stash them; then call start_session again.",
    { violations },
  );

export const surfaceRefused = (id: number, described: string, editable: string[], violations: unknown[]) =>
  new RatchetError(
    'surface_violation',
    `Experiment ${id} refused: the change touches files outside the edit surface. Nothing was committed or run, and your working tree is as you left it.\n${described}`,
    `Undo the listed changes (only ${editable.join(', ')} may change; protected files must match their pinned content), then call run_experiment again.`,
    { experimentId: id, violations },
  );

export const nothingToTry = (editable: string[]) =>
  new RatchetError('invalid_argument', 'The working tree equals the best commit: there is nothing to try.', `Edit ${editable.join(', ')} with your next idea, then call run_experiment.`);

export const commitOutsideSurface = (id: number, paths: string[]) =>
  new RatchetError('surface_violation', `Experiment ${id}'s commit changes ${paths.join(', ')}, outside the edit surface; it cannot be kept.`, `Call revert {id: ${id}}.`);

export const repeatNotCancellable = (id: number, of: number) =>
  new RatchetError('invalid_argument', `Run ${id} is a repeat of experiment ${of}.`, `Call cancel_experiment {id: ${of}}.`);

export const notCancellable = (id: number, state: string) =>
  new RatchetError('not_decidable', `Experiment ${id} is ${state}; only a running experiment can be cancelled.`, 'Call status to see what is running.');

export const noEvaluateLog = (id: number, configured: boolean) =>
  new RatchetError(
    'invalid_argument',
    configured ? `Experiment ${id} has no evaluate log: its run did not get that far.` : 'This session has no evaluate step configured.',
    `Call read_log {id: ${id}} for the run's log.`,
  );

// ---------------------------------------------------------------- keep and revert

const notDecidable = (id: number, message: string, hint: string) => new RatchetError('not_decidable', message, hint, { experimentId: id });

export const keepBaseline = (id: number) => notDecidable(id, `Experiment ${id} is the baseline; it is already the starting point.`, 'Edit, then call run_experiment.');

export const alreadyDecided = (id: number, decision: string) => notDecidable(id, `Experiment ${id} was already ${decision}.`, 'Run a new experiment.');

export const notMeasured = (id: number, state: string) =>
  notDecidable(
    id,
    `Experiment ${id} is ${state}, not measured, so there is nothing to keep.`,
    state === 'running' ? `Call wait_experiment {id: ${id}} first.` : 'Fix the problem (read_metric shows the log tail) and call run_experiment again.',
  );

export const notLatest = (id: number, latest: number) =>
  notDecidable(id, `Experiment ${id} is not the latest experiment (${latest} is).`, 'Only the latest measured candidate can be kept; re-apply the idea and run it again.');

export const constraintsViolated = (id: number, failed: ConstraintCheck[]) =>
  notDecidable(
    id,
    `Experiment ${id} violates constraint(s): ${failed
      .map((c) => `${c.metric}=${c.value ?? 'missing'} (${[c.min !== undefined ? `min ${c.min}` : '', c.max !== undefined ? `max ${c.max}` : ''].filter(Boolean).join(', ')})`)
      .join('; ')}.`,
    `Call revert {id: ${id}} and try an idea that stays within the constraints.`,
  );

export const forceNeedsReason = (id: number, what: 'tie' | 'inconclusive') =>
  notDecidable(
    id,
    'force needs a reason.',
    what === 'tie'
      ? 'Say why the equal result is worth keeping, e.g. "same val_bpb with 40 fewer lines".'
      : 'Say why the change is worth keeping without a proven gain, e.g. "same val_bpb with 40 fewer lines".',
  );

export const greedyNotImproved = (id: number, metricName: string, metric: number, best: number, delta: number, direction: 'minimize' | 'maximize', tie: boolean) =>
  notDecidable(
    id,
    `Experiment ${id} did not improve: ${metricName} ${fmt(metric)} vs best ${fmt(best)} (delta ${fmt(delta)}; must be strictly ${direction === 'minimize' ? 'lower' : 'higher'}).`,
    tie ? `It ties the best. If it is simpler, call keep {id: ${id}, force: true, reason: "..."}; otherwise revert {id: ${id}}.` : `Call revert {id: ${id}} and try another idea.`,
  );

export const noVerdictYet = (id: number) => notDecidable(id, `Experiment ${id} has no verdict yet.`, `Call wait_experiment {id: ${id}} until it is decided.`);

function verdictStats(report: DecisionReport): string {
  const interval = report.effectInterval ? ` (interval ${fmt(report.effectInterval[0])} to ${fmt(report.effectInterval[1])})` : '';
  return `effect ${report.effect === null ? 'unknown' : fmt(report.effect)}${interval} over ${report.runsSpent} runs: ${report.why}`;
}

export const inconclusive = (id: number, metricName: string, confidence: number, report: DecisionReport) =>
  notDecidable(
    id,
    `Experiment ${id} is inconclusive: no significant improvement in ${metricName} at ${confidence} confidence (${verdictStats(report)}).`,
    `Call revert {id: ${id}}; if the change is a simplification worth keeping anyway, keep {id: ${id}, force: true, reason: "..."}.`,
  );

export const notAnImprovement = (id: number, metricName: string, report: DecisionReport) =>
  notDecidable(id, `Experiment ${id} is not an improvement: ${metricName} is worse or short of minEffect (${verdictStats(report)}).`, `Call revert {id: ${id}} and try another idea.`);

export const revertKept = (id: number) =>
  new RatchetError('not_decidable', `Experiment ${id} was kept; it is the best or part of its history.`, 'Nothing to revert. Edit and run the next experiment.');

export const revertNotLatest = (id: number) =>
  new RatchetError('not_decidable', `Experiment ${id} is not the latest experiment.`, 'Call revert without an id to reset to the best commit.');

// ---------------------------------------------------------------- several agents

export const behindBest = (id: number, base: string, best: string, conflicts: string[]) =>
  new RatchetError(
    'behind_best',
    `Experiment ${id} was refused: your edits start from ${base.slice(0, 7)}, another agent has kept ${best.slice(0, 7)} since, and your change conflicts with it in ${conflicts.join(', ')}. Your edits are saved under refs/ratchet/<tag>/${id}.`,
    'Call sync to bring your tree to the new best (it saves your edits first), then redo the idea on it.',
    { conflicts, base, best },
  );

export const otherAgentsExperiment = (id: number, agent: string, me: string) =>
  new RatchetError(
    'other_agent',
    `Experiment ${id} was proposed by agent "${agent}"; only that agent decides it (you are "${me}").`,
    'Decide your own experiments: list_experiments {agent: "' + me + '"} lists them.',
    { agent },
  );

export const noBase = (agent: string, tag: string) =>
  new RatchetError(
    'behind_best',
    `Agent "${agent}" has not been brought to the best of session ${tag} yet (its worktree was added before the session started), so ratchet cannot tell your edits from the session's changes.`,
    'Call sync: it saves your tree under a ref and puts it at the best. Then edit and call run_experiment.',
  );

export const unknownAgent = (agent: string, here: string, registered: string | null) =>
  new RatchetError(
    'other_agent',
    registered
      ? `This worktree (${here}) says it is agent "${agent}", but "${agent}" is registered at ${registered}; it changes nothing here.`
      : `This worktree (${here}) says it is agent "${agent}", which no \`ratchet worktree add\` registered; it changes nothing here.`,
    'Give each agent its own worktree with `ratchet worktree add <name>` in the main worktree, and start the agent there.',
    { agent, registered },
  );
