// createServer(repo): the MCP layer — tools, the `loop` prompt, the program and report resources — over an MCP-free core.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ResearchLoop, type LoopOptions } from './core/loop.js';
import { loadConfig, type Config } from './core/config.js';
import { isRatchetError } from './core/errors.js';
import { tools } from './tools/index.js';
import { registerTool } from './tools/define.js';

export const PROGRAM_PATH = fileURLToPath(new URL('../program.md', import.meta.url));
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface CreatedServer {
  server: McpServer;
  loop: ResearchLoop;
  /** Claims the repo (one driving server per repo, held by the OS), checks the evidence and picks up runs a previous server left. */
  start: () => Promise<void>;
  close: () => Promise<void>;
}

export function createServer(opts: Omit<LoopOptions, 'logger'> & { logger: Logger }): CreatedServer {
  const loop = new ResearchLoop(opts);
  const server = new McpServer(
    { name: 'ratchet', version: VERSION },
    {
      capabilities: { logging: {} },
      instructions:
        'ratchet runs an auto-research loop and enforces its rules. You propose: edit the editable files with one idea at a time. ' +
        'ratchet runs, measures and keeps only measured improvements. Start with the `loop` prompt or status.',
    },
  );
  for (const def of tools) registerTool(server, def, () => loop, opts.logger);

  server.registerPrompt(
    'loop',
    {
      title: 'Run the ratchet research loop',
      description: 'program.md with this repo\'s ratchet.json filled in: the instructions for an agent that runs the loop overnight.',
    },
    () => ({ messages: [{ role: 'user', content: { type: 'text', text: renderProgram(opts.repo) } }] }),
  );
  server.registerResource(
    'program',
    'ratchet://program.md',
    { title: 'program.md', description: 'The research loop\'s instructions for the agent.', mimeType: 'text/markdown' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/markdown', text: renderProgram(opts.repo) }] }),
  );
  // The morning report and its chart, of the active session or else the latest; an error says what to do when there is none.
  // Loaded on first read: Vega and resvg would add most of a second to every server start.
  const reporting = () => import('./core/report/report.js');
  const report = async () => (await reporting()).currentReportData(opts.repo, loop).catch((err: unknown) => Promise.reject(isRatchetError(err) ? new Error(err.toText()) : err));
  server.registerResource(
    'report',
    'ratchet://report',
    { title: 'Morning report', description: 'The session so far: baseline to best with intervals, kept changes, rejected ideas, crashes, noise, plateau and caps.', mimeType: 'text/markdown' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/markdown', text: (await reporting()).reportMarkdown(await report(), { chart: 'ratchet://chart.png' }) }] }),
  );
  server.registerResource(
    'chart.png',
    'ratchet://chart.png',
    { title: 'Progress chart (PNG)', description: 'Every run over experiment number: kept green, discarded grey, the running best, the baseline noise band.', mimeType: 'image/png' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: await reporting().then(async (r) => r.chartPng(await r.renderChartSvg(await report())).toString('base64')) }] }),
  );
  server.registerResource(
    'chart.svg',
    'ratchet://chart.svg',
    { title: 'Progress chart (SVG)', description: 'The progress chart as SVG.', mimeType: 'image/svg+xml' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/svg+xml', text: await (await reporting()).renderChartSvg(await report()) }] }),
  );

  return {
    server,
    loop,
    async start() {
      try {
        loadConfig(opts.repo);
      } catch (err) {
        // Served anyway, so `status` can show the same error to the agent.
        opts.logger.error(isRatchetError(err) ? err.toText() : String(err));
      }
      await loop.excludeStateDir().catch(() => undefined); // not a git repo yet: start_session will say so
      const holder = await loop.claim();
      if (holder) opts.logger.warn({ holder }, 'another ratchet server drives this repo; serving read-only');
      try {
        const recovered = await loop.recover();
        if (recovered.length) opts.logger.info({ recovered }, 'picked up experiments left by a previous server');
      } catch (err) {
        opts.logger.error({ err }, 'recovery failed; the tools will report the problem');
      }
    },
    async close() {
      await server.close();
      await loop.flush();
      loop.close();
    },
  };
}

/**
 * program.md with {{placeholders}} replaced from ratchet.json, or a note on what is wrong with it. The repo's own
 * program.md (a preset's, or the user's) wins over the package's: it is the one written for this loop.
 */
export function renderProgram(repo: string): string {
  const own = join(repo, 'program.md');
  const template = readFileSync(existsSync(own) ? own : PROGRAM_PATH, 'utf8');
  let config: Config | null = null;
  let problem = '';
  try {
    config = loadConfig(repo);
  } catch (err) {
    problem = isRatchetError(err) ? err.toText() : String(err);
  }
  const values: Record<string, string> = config
    ? {
        editable: config.editable.map((g) => `\`${g}\``).join(', '),
        protected: ['ratchet.json', ...config.protected].map((g) => `\`${g}\``).join(', '),
        metric: config.metric.name,
        direction: config.metric.direction === 'minimize' ? 'lower is better' : 'higher is better',
        budget: `${config.run.budgetSeconds} seconds`,
        command: Array.isArray(config.run.command) ? config.run.command.join(' ') : config.run.command,
        constraints: config.metric.constraints.length
          ? config.metric.constraints.map((c) => `${c.metric}${c.min !== undefined ? ` >= ${c.min}` : ''}${c.max !== undefined ? ` <= ${c.max}` : ''}`).join(', ')
          : 'none',
        evaluate: config.evaluate ? 'a trusted evaluate step computes the metric after each run; printing it yourself gains nothing' : 'the metric is read from the run\'s own output',
        decision:
          config.decision.rule === 'significant'
            ? `Under the significant rule one experiment is several runs: ratchet re-measures the best and repeats the candidate (up to ${config.decision.maxRepeats} pairs) until the verdict is clear, so an experiment takes longer than one run. Every run happens in its own workspace built from the commit it measures, so you may keep editing your tree meanwhile: what is measured is the candidate snapshotted when you called run_experiment.`
            : 'Under the greedy rule each experiment is one run, and any strictly better run is keepable, even by noise.',
        parallel:
          config.parallel > 1
            ? `**Several at once.** ratchet.json allows ${config.parallel} experiments at a time. Call \`run_experiment {..., wait_seconds: 0}\`: it returns at once, with the candidate snapshotted, so you can edit the next idea while it runs. Beyond ${config.parallel} in flight, new ones wait in a queue (state \`queued\`). \`wait_experiment {next: true}\` returns whichever finishes first; \`status\` lists what is in flight, queued and awaiting a decision. Start each idea from the best: \`revert {}\` puts your tree back there (reverting one experiment by id leaves your tree alone when it holds other edits). If \`keep\` answers that the best moved since the candidate was measured, its change is being measured again on the new best: wait for the id it names and keep that one; a conflict means redoing the idea on the current best. Other agents may share this ledger from their own worktrees (\`ratchet worktree add\`): when \`status\` shows \`agent.behind\`, another agent kept a change, and \`sync\` brings your tree to the new best before your next idea; decide only your own experiments.`
            : '',
      }
    : {};
  const filled = template.replace(/\{\{(\w+)\}\}/g, (_, key: string) => values[key] ?? `(${key}: see ratchet.json)`);
  return problem ? `> ratchet.json problem: ${problem}\n\n${filled}` : filled;
}
