// npm run bench:overhead — ratchet's per-run overhead against a bare shell loop doing the same commit, run and grep,
// side by side in one process, plus status/list/read_metric latency on a 100k-experiment ledger.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 30);
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const COMMAND = 'echo "score: $(cat value.txt)"';

function makeRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ratchet-bench-'));
  const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'value.txt'), '100\n');
  writeFileSync(
    join(dir, 'ratchet.json'),
    JSON.stringify({ editable: ['value.txt'], protected: [], run: { command: COMMAND, budgetSeconds: 30 }, metric: { name: 'score', direction: 'minimize' }, decision: { rule: 'greedy' } }, null, 2),
  );
  git('add', '-A');
  git('commit', '-q', '-m', 'init');
  return dir;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;

/** The floor: what a shell script doing the same work per iteration costs (edit, commit, run, grep, keep or reset). */
function bareLoop(): number[] {
  const dir = makeRepo();
  const times: number[] = [];
  try {
    for (let i = 0; i < ITERATIONS; i++) {
      const t0 = performance.now();
      writeFileSync(join(dir, 'value.txt'), `${99 - i}\n`);
      execFileSync('sh', ['-c', `git -c user.name=b -c user.email=b@l commit -qam "try ${i}" && ${COMMAND} > run.log 2>&1 && grep '^score:' run.log`], { cwd: dir, stdio: 'pipe' });
      times.push(performance.now() - t0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return times;
}

async function ratchetLoop(): Promise<{ times: number[]; sandbox: string }> {
  const dir = makeRepo();
  const client = new Client({ name: 'bench', version: '0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', dir], stderr: 'ignore' }));
  const call = async (name: string, args: Record<string, unknown> = {}) => {
    const r = (await client.callTool({ name, arguments: args })) as { isError?: boolean; structuredContent?: Record<string, unknown>; content: { text: string }[] };
    if (r.isError) throw new Error(`${name}: ${r.content[0]?.text}`);
    return r.structuredContent!;
  };
  const times: number[] = [];
  try {
    const started = await call('start_session', { tag: 'bench' });
    await call('wait_experiment', { id: (started.baseline as { id: number }).id, wait_seconds: 50 });
    for (let i = 0; i < ITERATIONS; i++) {
      const t0 = performance.now();
      writeFileSync(join(dir, 'value.txt'), `${99 - i}\n`);
      const ran = (await call('run_experiment', { description: `try ${i}`, wait_seconds: 50 })).experiment as { id: number; state: string };
      if (ran.state !== 'measured') throw new Error(`iteration ${i}: ${ran.state}`);
      await call('keep', { id: ran.id });
      times.push(performance.now() - t0);
    }
    const status = await call('status');
    return { times, sandbox: (status.sandbox as { kind: string }).kind };
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  // Interleaved halves, so a change in machine load hits both sides alike.
  const bare1 = bareLoop();
  const ratchet1 = await ratchetLoop();
  const bare2 = bareLoop();
  const ratchet2 = await ratchetLoop();
  const bare = [...bare1, ...bare2];
  const ratchet = [...ratchet1.times, ...ratchet2.times];
  const overhead = median(ratchet) - median(bare);
  console.log(`Per-iteration cost (edit → run_experiment → keep), ${bare.length} iterations each, sandbox: ${ratchet1.sandbox}`);
  console.log(`  bare shell loop : median ${median(bare).toFixed(1)} ms, p95 ${p95(bare).toFixed(1)} ms`);
  console.log(`  ratchet over MCP: median ${median(ratchet).toFixed(1)} ms, p95 ${p95(ratchet).toFixed(1)} ms`);
  console.log(`  overhead        : ${overhead.toFixed(1)} ms per run (target ≤ 150 ms), ratio ${(median(ratchet) / median(bare)).toFixed(1)}×`);
  const size = Number(process.env.BENCH_LEDGER_SIZE ?? 100_000);
  if (size > 0) {
    const { benchLargeLedger } = await import('./large-ledger.js');
    await benchLargeLedger(size);
  }
}

await main();
