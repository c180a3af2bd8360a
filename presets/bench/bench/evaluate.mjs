// The trusted evaluate step of the bench preset: runs the correctness test, then times the benchmark command. Protected.
// Prints `correct: 1|0` (a constraint in ratchet.json: a faster wrong answer is never kept) and `wall_ms: <median>`.
import { spawnSync } from 'node:child_process';

const TEST = {{test}}; // the correctness test; exit code 0 = correct
const BENCH = {{bench}}; // the command whose wall time is the metric
const REPEATS = 5; // timed runs; the median is reported, so one slow run does not decide

/** Runs a command; what it printed is shown prefixed, so no line of the code under test can pass for a metric line. */
function run(label, command, { show }) {
  const start = performance.now();
  const r = spawnSync(command, { shell: true, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 });
  const ms = performance.now() - start;
  const ok = r.status === 0;
  if (show || !ok) for (const line of `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter(Boolean).slice(-40)) console.error(`${label}| ${line}`);
  return { ok, ms, exit: r.status ?? r.signal ?? r.error?.message };
}

if (!TEST) console.error('evaluate: TEST is empty in bench/evaluate.mjs, so nothing counts as correct; set it to your test command.');
const correct = TEST ? run('test', TEST, { show: true }).ok : false;

const times = [];
for (let i = 0; i < REPEATS; i++) {
  const bench = run('bench', BENCH, { show: false });
  if (!bench.ok) {
    console.error(`evaluate: \`${BENCH}\` failed (exit ${bench.exit}); a benchmark that fails has no time.`);
    process.exit(1);
  }
  times.push(bench.ms);
}
times.sort((a, b) => a - b);
// Printed last, after every line of the commands.
console.log(`correct: ${correct ? 1 : 0}`);
console.log(`wall_ms: ${times[Math.floor(times.length / 2)].toFixed(1)}`);
console.log(`wall_ms_min: ${times[0].toFixed(1)}`);
