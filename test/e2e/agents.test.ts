// Several agents on one ledger: two servers over stdio on two worktrees of one repo, running at once, then one SIGKILLed.
import { describe, it, expect, afterEach } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeRepo, baseConfig, type TestRepo } from '../helpers/repo.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
type Result = { isError?: boolean; structuredContent?: Record<string, any>; content: { type: string; text: string }[] };

// Two parts of the score on lines far apart, so two agents' changes merge cleanly; each run notes its experiment id.
const TRAIN = `import { appendFileSync } from 'node:fs';
const A = 0.5;
const SLEEP_MS = 0;
// the lines between the two constants keep their changes apart
// when one agent's change is carried onto another's kept one
// (a three-way merge needs an untouched line between hunks)
const B = 0.5;
appendFileSync(process.env.RUN_LOG, process.env.RATCHET_EXPERIMENT_ID + '\\n');
await new Promise((r) => setTimeout(r, SLEEP_MS));
console.log('score: ' + (A + B).toFixed(6));
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function connect(dir: string) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--repo', dir], stderr: 'ignore' });
  const client = new Client({ name: 'agents-test', version: '1.0.0' });
  await client.connect(transport);
  cleanups.push(() => client.close().catch(() => undefined));
  const call = async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args }, undefined, { timeout: 90_000 })) as Result;
  const finish = async (id: number) => {
    for (;;) {
      const r = await call('wait_experiment', { id, wait_seconds: 10 });
      if (r.isError) throw new Error(r.content[0]!.text);
      const e = r.structuredContent!.experiment;
      if (e.state !== 'running' && e.state !== 'queued') return e;
    }
  };
  return { call, finish, pid: transport.pid!, close: () => client.close() };
}

function setup() {
  const runLog = join(mkdtempSync(join(tmpdir(), 'ratchet-runlog-')), 'runs.log');
  writeFileSync(runLog, '');
  const repo = makeRepo(
    { 'train.mjs': TRAIN },
    // Without a sandbox, so the runs can note their ids in a host file; the sandbox has its own tests.
    baseConfig({ sandbox: 'off', parallel: 4, run: { command: 'node train.mjs', budgetSeconds: 30, graceSeconds: 1, env: { RUN_LOG: runLog } }, metric: { name: 'score', direction: 'minimize' } }),
  );
  cleanups.push(() => repo.cleanup());
  return { repo, runLog };
}

function addAgent(repo: TestRepo, name: string): { path: string; printed: string } {
  const path = join(mkdtempSync(join(tmpdir(), 'ratchet-agent-')), name);
  cleanups.push(() => rmSync(join(path, '..'), { recursive: true, force: true }));
  const printed = execFileSync(process.execPath, [CLI, 'worktree', 'add', name, '--repo', repo.dir, '--path', path], { encoding: 'utf8' });
  return { path, printed };
}

const setLine = (file: string, name: string, value: string) => writeFileSync(file, readFileSync(file, 'utf8').replace(new RegExp(`const ${name} = [^;]+;`), `const ${name} = ${value};`));
const runsOf = (runLog: string) => readFileSync(runLog, 'utf8').split('\n').filter(Boolean).map(Number);

describe('several agents on one ledger', () => {
  it('two servers on two worktrees share one ledger and one best; a stale keep is carried and measured again', async () => {
    const { repo, runLog } = setup();
    const main = await connect(repo.dir);
    const started = await main.call('start_session', { tag: 'two' });
    expect(started.isError).toBeFalsy();
    await main.finish(started.structuredContent!.baseline.id);

    const b = addAgent(repo, 'b');
    expect(b.printed).toContain('claude');
    expect(b.printed).toContain('codex-loop');
    expect(existsSync(join(b.path, 'train.mjs'))).toBe(true);
    const agentB = await connect(b.path);

    // Each agent edits its own part of the score and submits while the other's run goes.
    setLine(join(repo.dir, 'train.mjs'), 'A', '0.3');
    setLine(join(b.path, 'train.mjs'), 'B', '0.3');
    const [ra, rb] = await Promise.all([
      main.call('run_experiment', { description: 'lower A', wait_seconds: 0 }),
      agentB.call('run_experiment', { description: 'lower B', wait_seconds: 0 }),
    ]);
    expect(ra.isError).toBeFalsy();
    expect(rb.isError).toBeFalsy();
    const idA = ra.structuredContent!.experiment.id;
    const idB = rb.structuredContent!.experiment.id;
    expect(ra.structuredContent!.experiment.agent).toBe('main');
    expect(rb.structuredContent!.experiment.agent).toBe('b');
    expect((await main.finish(idA)).metric).toBeCloseTo(0.8);
    expect((await agentB.finish(idB)).metric).toBeCloseTo(0.8);

    // An agent decides only its own experiments.
    const foreign = await main.call('keep', { id: idB });
    expect(foreign.isError).toBe(true);
    expect(foreign.structuredContent?.code ?? foreign.content[0]!.text).toMatch(/other_agent|proposed by agent "b"/);

    // Both keep at once: one moves the branch, the other is stale and its change is carried onto the new best.
    const [ka, kb] = await Promise.all([main.call('keep', { id: idA }), agentB.call('keep', { id: idB })]);
    const kept = [ka, kb].filter((r) => !r.isError);
    expect(kept).toHaveLength(1);
    const stale = (ka.isError ? ka : kb).content[0]!.text;
    expect(stale).toMatch(/stale_candidate|measured against a best that has moved/);
    const loser = ka.isError ? main : agentB;
    // The error's details reach the client as a JSON line: the id the carried change is measured as.
    const remeasuredId = (JSON.parse(/^Details: (.*)$/m.exec(stale)![1]!) as { remeasuredAs: number }).remeasuredAs;
    expect(stale).toContain(`measured as experiment ${remeasuredId}`);
    const remeasured = await loser.finish(remeasuredId);
    expect(remeasured, JSON.stringify(remeasured)).toMatchObject({ state: 'measured' });
    expect(remeasured.metric).toBeCloseTo(0.6); // both changes, measured together
    const keptAgain = await loser.call('keep', { id: remeasuredId });
    expect(keptAgain.isError).toBeFalsy();

    // One best, on the one branch, holding both agents' changes; every run was driven once.
    const branch = repo.git('rev-parse', 'ratchet/two');
    const best = (await main.call('status')).structuredContent!;
    expect(best.session.bestCommit).toBe(branch);
    expect(best.session.bestExperimentId).toBe(remeasuredId);
    const bestTrain = `${repo.git('show', `${branch}:train.mjs`)}\n`; // git's output, trimmed by the helper, ends with a newline
    expect(bestTrain).toContain('const A = 0.3;');
    expect(bestTrain).toContain('const B = 0.3;');
    const runs = runsOf(runLog);
    expect(new Set(runs).size).toBe(runs.length);

    // The keeper's tree stands on the best; the other agent is behind until it syncs, and sync carries it there.
    const winner = ka.isError ? agentB : main;
    const winnerDir = ka.isError ? b.path : repo.dir;
    const loserDir = ka.isError ? repo.dir : b.path;
    expect((await loser.call('status')).structuredContent!.agent.behind).toBe(false);
    expect((await winner.call('status')).structuredContent!.agent.behind).toBe(true);
    const synced = await winner.call('sync');
    expect(synced.isError).toBeFalsy();
    expect(synced.structuredContent!.to).toBe(branch);
    expect(readFileSync(join(winnerDir, 'train.mjs'), 'utf8')).toBe(bestTrain);
    expect(readFileSync(join(loserDir, 'train.mjs'), 'utf8')).toBe(bestTrain);
    expect((await winner.call('status')).structuredContent!.agent.behind).toBe(false);
    // `ratchet worktree list` shows both agents, each with its one keep, neither behind the best.
    const roster = execFileSync(process.execPath, [CLI, 'worktree', 'list', '--repo', b.path], { encoding: 'utf8' }).trim().split('\n');
    expect(roster).toHaveLength(2);
    expect(roster[0]).toMatch(/^main\t.*\tin flight 0\tkept 1$/);
    expect(roster[1]).toMatch(/^b\t.*\tin flight 0\tkept 1$/);

    // Filters by agent, and the agent of every experiment is recorded.
    const listed = await main.call('list_experiments', { agent: 'b' });
    const ids = listed.structuredContent!.experiments.map((e: { id: number }) => e.id);
    expect(ids).toContain(idB);
    expect(ids).not.toContain(idA);
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'), { readonly: true });
    try {
      const agents = db.prepare('SELECT experiment_id AS id, agent FROM experiment_agents').all() as { id: number; agent: string }[];
      expect(agents.find((a) => a.id === idA)?.agent).toBe('main');
      expect(agents.find((a) => a.id === idB)?.agent).toBe('b');
      // The worktree's own .ratchet/ holds no second ledger.
      expect(existsSync(join(b.path, '.ratchet', 'ratchet.db'))).toBe(false);
    } finally {
      db.close();
    }
  }, 240_000);

  it('a run whose server is SIGKILLed is adopted by the surviving server, never started twice, and decided by its own agent after a restart', async () => {
    const { repo, runLog } = setup();
    const main = await connect(repo.dir);
    const started = await main.call('start_session', { tag: 'kill' });
    await main.finish(started.structuredContent!.baseline.id);
    const b = addAgent(repo, 'b');
    const agentB = await connect(b.path);

    setLine(join(b.path, 'train.mjs'), 'B', '0.2');
    setLine(join(b.path, 'train.mjs'), 'SLEEP_MS', '4000');
    const run = await agentB.call('run_experiment', { description: 'slow and better', wait_seconds: 0 });
    const id = run.structuredContent!.experiment.id;
    for (let i = 0; i < 100 && !runsOf(runLog).includes(id); i++) await new Promise((r) => setTimeout(r, 50));
    expect(runsOf(runLog)).toContain(id); // the run has started
    process.kill(agentB.pid, 'SIGKILL');

    // The surviving server notices the dead one and follows its run to the end.
    const e = await main.finish(id);
    expect(e.state).toBe('measured');
    expect(e.metric).toBeCloseTo(0.7);
    expect(runsOf(runLog).filter((x) => x === id)).toHaveLength(1);
    const db = new Database(join(repo.dir, '.ratchet', 'ratchet.db'), { readonly: true });
    try {
      const owner = db.prepare('SELECT holder_pid FROM run_owners WHERE experiment_id = ?').get(id) as { holder_pid: number };
      expect(owner.holder_pid).toBe(main.pid);
    } finally {
      db.close();
    }

    // Agent b comes back: its experiment awaits its decision, and it keeps it.
    const again = await connect(b.path);
    const status = (await again.call('status')).structuredContent!;
    expect(status.agent.name).toBe('b');
    expect(status.parallel.awaitingDecision).toContain(id);
    const kept = await again.call('keep', { id });
    expect(kept.isError).toBeFalsy();
    expect(repo.git('rev-parse', 'ratchet/kill')).toBe(e.commit);
  }, 180_000);

  it('a worktree added before the session must sync first; an agent cannot cancel another\'s run, nor pass itself off as another agent', async () => {
    const { repo } = setup();
    const b = addAgent(repo, 'b'); // before any session: its tree has no base in the session to come
    const main = await connect(repo.dir);
    const started = await main.call('start_session', { tag: 'late' });
    await main.finish(started.structuredContent!.baseline.id);
    const agentB = await connect(b.path);
    const trainB = join(b.path, 'train.mjs');
    setLine(trainB, 'B', '0.3');
    const refused = await agentB.call('run_experiment', { description: 'no base yet', wait_seconds: 0 });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]!.text).toContain('[behind_best]');
    expect((await agentB.call('status')).structuredContent!.agent.behind).toBe(true);
    const synced = await agentB.call('sync');
    expect(synced.structuredContent!.from).toBeNull();
    const saved = synced.structuredContent!.savedWorktree as string;
    expect(repo.git('show', `${saved}:train.mjs`)).toContain('const B = 0.3;'); // nothing lost
    expect(readFileSync(trainB, 'utf8')).toContain('const B = 0.5;'); // the tree is at the best

    setLine(trainB, 'B', '0.3');
    setLine(trainB, 'SLEEP_MS', '3000');
    const run = await agentB.call('run_experiment', { description: 'lower B', wait_seconds: 0 });
    expect(run.isError).toBeFalsy();
    const id = run.structuredContent!.experiment.id;
    const cancel = await main.call('cancel_experiment', { id });
    expect(cancel.isError).toBe(true);
    expect(cancel.content[0]!.text).toContain('[other_agent]');
    expect((await agentB.finish(id)).state).toBe('measured');

    // Agent b's marker rewritten to name another agent: its server changes nothing.
    const gitDir = execFileSync('git', ['rev-parse', '--absolute-git-dir'], { cwd: b.path, encoding: 'utf8' }).trim();
    writeFileSync(join(gitDir, 'ratchet-agent'), 'c\n');
    await agentB.close();
    const spoof = await connect(b.path);
    const attempt = await spoof.call('revert', {});
    expect(attempt.isError).toBe(true);
    expect(attempt.content[0]!.text).toContain('no `ratchet worktree add` registered');
  }, 180_000);

  it('`ratchet worktree remove` waits for the agent\'s runs, its decisions and its server, saves its edits under a ref, and keeps its experiments', async () => {
    const { repo } = setup();
    const main = await connect(repo.dir);
    const started = await main.call('start_session', { tag: 'rm' });
    await main.finish(started.structuredContent!.baseline.id);
    const b = addAgent(repo, 'b');
    const agentB = await connect(b.path);
    const trainB = join(b.path, 'train.mjs');
    setLine(trainB, 'B', '0.3');
    setLine(trainB, 'SLEEP_MS', '2000');
    const id = (await agentB.call('run_experiment', { description: 'lower B', wait_seconds: 0 })).structuredContent!.experiment.id as number;
    const remove = (name: string, ...flags: string[]) => {
      try {
        return { code: 0, out: execFileSync(process.execPath, [CLI, 'worktree', 'remove', name, '--repo', repo.dir, ...flags], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
      } catch (err) {
        const e = err as { status: number; stderr: string };
        return { code: e.status, out: e.stderr };
      }
    };
    const busy = remove('b');
    expect(busy.code).toBe(2);
    expect(busy.out).toContain('1 experiment(s) running or queued');
    expect((await agentB.finish(id)).state).toBe('measured');
    // Measured, it awaits a decision only agent b may make.
    const undecided = remove('b');
    expect(undecided.code).toBe(2);
    expect(undecided.out).toContain(`#${id} awaiting keep or revert`);
    await agentB.call('revert', { id });
    const served = remove('b');
    expect(served.code).toBe(2);
    expect(served.out).toContain(`still serves ${realpathSync(b.path)}`);
    expect(existsSync(b.path)).toBe(true);

    await agentB.close();
    setLine(trainB, 'A', '0.1'); // edits in progress, in no experiment
    writeFileSync(join(b.path, 'notes.txt'), 'an idea for later\n');
    // A checkpoint git ignores is in no commit, so it cannot be saved: removing is refused until --force.
    writeFileSync(join(repo.dir, '.git', 'info', 'exclude'), '*.ckpt\n', { flag: 'a' });
    writeFileSync(join(b.path, 'model.ckpt'), 'weights');
    let kept = remove('b');
    for (let i = 0; i < 50 && kept.out.includes('still serves'); i++) {
      await new Promise((r) => setTimeout(r, 100)); // the server exits once its stdin closes
      kept = remove('b');
    }
    expect(kept.code).toBe(2);
    expect(kept.out).toContain('files git ignores, which would be deleted and cannot be saved under a ref: model.ckpt');
    expect(existsSync(join(b.path, 'model.ckpt'))).toBe(true);
    const done = remove('b', '--force');
    expect(done.code, done.out).toBe(0);
    expect(existsSync(b.path)).toBe(false);
    const ref = /saved under (\S+) /.exec(done.out)![1]!;
    expect(repo.git('show', `${ref}:train.mjs`)).toContain('const A = 0.1;');
    expect(repo.git('show', `${ref}:notes.txt`)).toBe('an idea for later');
    expect(repo.git('worktree', 'list')).not.toContain(b.path);
    const roster = execFileSync(process.execPath, [CLI, 'worktree', 'list', '--repo', repo.dir], { encoding: 'utf8' });
    expect(roster).not.toMatch(/^b\t/m);
    // Its experiment is still evidence, under its name.
    const listed = (await main.call('list_experiments', { agent: 'b' })).structuredContent!.experiments as { id: number }[];
    expect(listed.map((e) => e.id)).toContain(id);
    expect(remove('b').out).toContain('no agent named "b"');
    expect(remove('main').out).toContain('cannot be removed');
  }, 180_000);
});
