// `ratchet show <id>`: one experiment in full (verdict, samples, diff, log tail), read from the ledger without taking the server's lock.
import { LoopContext } from './core/context.js';
import { reportingFailure } from './cli-failure.js';
import { forTerminal } from './terminal-text.js';
import { experimentDetail, type ExperimentDetail } from './core/experiment-detail.js';
import { formatNumber } from './core/format.js';
import { createLogger } from './log.js';

export async function runShow(repo: string, idArg: string | undefined, opts: { json: boolean }): Promise<number> {
  const id = Number(idArg);
  if (idArg === undefined || !/^\d+$/.test(idArg) || !Number.isSafeInteger(id)) {
    process.stderr.write(`ratchet: show needs an experiment id, e.g. \`ratchet show 3\` (${idArg === undefined ? 'none given' : `"${idArg}" is not one`}). \`ratchet status\` and the list_experiments tool show the ids.\n`);
    return 2;
  }
  const ctx = new LoopContext({ repo, logger: createLogger({ stderr: false }) });
  return reportingFailure(async () => {
    if (!ctx.hasLedger) {
      process.stderr.write(`ratchet: ${repo} has no ratchet ledger yet (.ratchet/ratchet.db): nothing has run here.\nNext: start a session (the start_session tool), or pass --repo with the project that ran one.\n`);
      return 1;
    }
    const detail = await experimentDetail(ctx, id);
    // Printing to stdout is right here: this is the CLI, not the MCP server.
    process.stdout.write(opts.json ? `${JSON.stringify(detail, null, 2)}\n` : forTerminal(render(detail)));
    return 0;
  }, () => {
    ctx.closeLedger();
    ctx.git.close();
  });
}

export function render(d: ExperimentDetail): string {
  const e = d.experiment;
  const lines: string[] = [];
  lines.push(`#${e.id} ${e.kind}${e.repeatOf !== null ? ` of #${e.repeatOf}` : ''} in session ${d.tag}: ${e.description}`);
  if (e.hypothesis) lines.push(`hypothesis: ${e.hypothesis}`);
  lines.push(`state: ${e.state}${e.decision ? `, ${e.decision}${e.forced ? ' (forced)' : ''}` : ''}${e.reason ? ` — ${e.reason}` : ''}`);
  lines.push(`${d.metricName} (${d.direction}): ${e.metric === null ? '-' : formatNumber(e.metric)}${secondary(e.secondary)}`);
  if (d.verdict) {
    const v = d.verdict;
    const interval = d.interval ? ` [${formatNumber(d.interval[0])}, ${formatNumber(d.interval[1])}]` : '';
    lines.push(`verdict: ${v.verdict} (${v.rule}), effect ${v.effect === null ? '-' : formatNumber(v.effect)}${interval}, ${v.runsSpent} run(s)`);
    if (v.why) lines.push(`  ${v.why}`);
  }
  if (d.samples.length) lines.push(`samples: ${d.samples.filter((s) => s.name === d.metricName).map((s) => `#${s.run} ${s.side} ${formatNumber(s.value)}`).join(', ')}`);
  lines.push(`duration: ${e.durationSeconds === null ? '-' : `${e.durationSeconds} s`}, peak memory: ${e.peakMemoryMb === null ? '-' : `${e.peakMemoryMb} MB${e.memoryMethod ? ` (${e.memoryMethod})` : ''}`}${e.exitCode !== null ? `, exit ${e.exitCode}` : ''}${e.signal ? `, ${e.signal}` : ''}`);
  if (e.commit) lines.push(`commit: ${e.commit.slice(0, 12)} on ${e.parentCommit.slice(0, 12)}${e.diffStats ? ` (${e.diffStats.files} file(s), +${e.diffStats.insertions} -${e.diffStats.deletions})` : ''}`);
  lines.push('', '--- diff ---');
  if (d.diffNote) lines.push(d.diffNote);
  if (d.diff) lines.push(d.diff.replace(/\n$/, ''));
  lines.push('', `--- log: last lines of ${d.logPath} ---`, d.logTail || '(empty)');
  if (d.evaluateLogTail !== null) lines.push('', '--- evaluate log ---', d.evaluateLogTail || '(empty)');
  return `${lines.join('\n')}\n`;
}

function secondary(values: Record<string, number>): string {
  const entries = Object.entries(values);
  return entries.length ? `; ${entries.map(([k, v]) => `${k} ${formatNumber(v)}`).join(', ')}` : '';
}
