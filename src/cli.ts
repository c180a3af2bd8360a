#!/usr/bin/env node
// ratchet CLI: serve (default) | init | status | demo.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from './server.js';
import { createLogger } from './log.js';
import { CONFIG_FILE, loadConfig } from './core/config.js';
import { ResearchLoop } from './core/loop.js';
import { isRatchetError } from './core/errors.js';
import { reportingFailure } from './cli-failure.js';
import { forTerminal } from './terminal-text.js';
import { LOCAL_SCHEMA, refreshLocalSchema } from './schema-file.js';
import { sessionRule, statusText } from './status-text.js';

const USAGE = `Usage: ratchet [serve|init|status|stop|close|verify|integrity|show|dashboard|report|demo|eval|worktree] [--repo DIR]

  serve   (default) the stdio MCP server for the repo
  init    write ratchet.json and a preset's starter files: --preset skill|train|bench (default: picked from the repo); --force overwrites ratchet.json
  status  where the session stands, in a few lines (--json: what the status tool returns)
  verify  re-measure the kept commits of a session (--tag T, --runs N, --json); exits 1 if any did not reproduce
  integrity  report tampering with ratchet's evidence; --accept reseals it once you have looked
  stop    end the session: no new experiments; the running one finishes (--cancel: cancel it)
  close   close a finished session for good, so the agent can start the next one
  demo    run the scripted demo loop in a temporary repo: --example tiny-lm (default) or --example skill (a SKILL.md and its eval suite); --experiments N bounds the proposals tried
  hook    Claude Code hooks: \`hook stop\` keeps the agent at an open session, \`hook session-start\` gives it the state (JSON on stdin)
  codex-loop  run \`codex exec\` turn after turn until the session is finished (--max-turns N, --codex PATH, -- codex options)
  show    one experiment in full: verdict, samples, diff and log tail (ratchet show <id> [--json])
  dashboard  a live, read-only web page of the night (--port P, --host H; beyond loopback it needs the printed token)
  report  the morning report: report.md, report.html, progress.png and progress.svg (--tag T, --out DIR; default .ratchet/report/<tag>/)
  worktree  several agents on one ledger: \`worktree add <name>\` makes a git worktree for one more agent (--path DIR) and prints how to start it there; \`worktree list\` lists the agents; \`worktree remove <name>\` takes one away, saving its edits under a ref (--force also deletes files git ignores there)
  eval    score a skill with binary assertions: ratchet eval [SUITE_DIR] (default evals) [--split train|held-out|all] [--agent CMD] [--trials N] [--concurrency N] [--timeout S] [--json] [--collect DIR | --score DIR]

The repo is --repo, else $CLAUDE_PROJECT_DIR, else the current directory.`;

/** The command line, strictly: an unknown or misspelt option is an error, not silently ignored. */
function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      force: { type: 'boolean' },
      preset: { type: 'string' },
      example: { type: 'string' },
      experiments: { type: 'string' },
      tag: { type: 'string' },
      runs: { type: 'string' },
      json: { type: 'boolean' },
      accept: { type: 'boolean' },
      cancel: { type: 'boolean' },
      'max-turns': { type: 'string' },
      codex: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      out: { type: 'string' },
      split: { type: 'string' },
      agent: { type: 'string' },
      trials: { type: 'string' },
      concurrency: { type: 'string' },
      timeout: { type: 'string' },
      collect: { type: 'string' },
      score: { type: 'string' },
      path: { type: 'string' },
    },
  });
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`ratchet: ${(err as Error).message}. Run \`ratchet --help\` for the commands and their options.\n`);
    // Never 2 for a hook: a Stop hook that exits 2 blocks the stop, and a hook must never trap the agent.
    return argv[0] === 'hook' ? 1 : 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  // Before any check that exits 2: a Stop hook that exits 2 blocks the stop, and a hook must never trap the agent.
  if (command === 'hook') {
    const { runHook } = await import('./hooks/command.js');
    return runHook(positionals[1], values.repo ?? (process.env.CLAUDE_PROJECT_DIR || undefined));
  }
  const repo = resolve(values.repo ?? process.env.CLAUDE_PROJECT_DIR ?? process.cwd());
  if (command !== 'demo' && (!existsSync(repo) || !statSync(repo).isDirectory())) {
    process.stderr.write(`ratchet: ${repo} is not a directory. Pass --repo with your project's path.\n`);
    return 2;
  }
  switch (command) {
    case 'serve':
      return serve(repo);
    case 'init': {
      const { runInit } = await import('./init/command.js');
      return runInit(repo, { preset: values.preset, force: values.force === true });
    }
    case 'status':
      return printStatus(repo, values.json === true);
    case 'verify': {
      const runs = values.runs === undefined ? 1 : Number(values.runs);
      if (!Number.isInteger(runs) || runs < 1 || runs > 100) {
        process.stderr.write('ratchet: --runs must be a whole number from 1 to 100.\n');
        return 2;
      }
      const { runVerify } = await import('./verify-command.js');
      return runVerify(repo, { tag: values.tag, runs, json: values.json === true });
    }
    case 'integrity': {
      const { runIntegrity } = await import('./verify-command.js');
      return runIntegrity(repo, { accept: values.accept === true, json: values.json === true });
    }
    case 'stop': {
      const { runStop } = await import('./stop-command.js');
      return runStop(repo, { cancel: values.cancel === true });
    }
    case 'close': {
      const { runClose } = await import('./stop-command.js');
      return runClose(repo);
    }
    case 'show': {
      const { runShow } = await import('./show-command.js');
      return runShow(repo, positionals[1], { json: values.json === true });
    }
    case 'dashboard': {
      const { runDashboard } = await import('./dashboard/command.js');
      return runDashboard(repo, { port: values.port, host: values.host });
    }
    case 'codex-loop': {
      const maxTurns = values['max-turns'] === undefined ? undefined : Number(values['max-turns']);
      if (maxTurns !== undefined && (!Number.isInteger(maxTurns) || maxTurns < 1)) {
        process.stderr.write('ratchet: --max-turns must be a whole number of at least 1.\n');
        return 2;
      }
      const { runCodexLoop } = await import('./hooks/codex-loop.js');
      const dashes = argv.indexOf('--');
      return runCodexLoop({ repo, codex: values.codex, maxTurns, codexArgs: dashes === -1 ? [] : argv.slice(dashes + 1) });
    }
    case 'worktree': {
      const { runWorktree } = await import('./worktree-command.js');
      return runWorktree(repo, positionals[1], positionals[2], { path: values.path, force: values.force === true });
    }
    case 'report': {
      const { runReport } = await import('./report-command.js');
      return runReport(repo, { tag: values.tag, out: values.out });
    }
    case 'eval': {
      const { runEval } = await import('./eval/command.js');
      return runEval(repo, positionals[1], values);
    }
    case 'demo': {
      if (values.experiments !== undefined && !/^\d+$/.test(values.experiments)) {
        process.stderr.write(`ratchet demo: --experiments must be a whole number, not "${values.experiments}".\n`);
        return 2;
      }
      const { runDemo } = await import('./demo.js');
      return runDemo({ example: values.example, experiments: values.experiments === undefined ? undefined : Number(values.experiments) });
    }
    default:
      process.stderr.write(`ratchet: unknown command "${command}".\n${USAGE}\n`);
      return 2;
  }
}

async function serve(repo: string): Promise<number> {
  const logger = createLogger({ file: join(repo, '.ratchet', 'server.log') });
  const { server, start, close } = createServer({ repo, logger });
  let closing = false;
  const shutdown = async (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, 'shutting down; running experiments stay under their supervisors');
    await close().catch((err: unknown) => logger.error({ err }, 'close failed'));
    process.exit(0);
  };
  // A background driver must never take the server down with it; log and carry on.
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.stdin.on('end', () => void shutdown('stdin closed'));
  process.stdin.on('close', () => void shutdown('stdin closed'));

  await start();
  keepSchemaCopy(repo, logger);
  const transport = new StdioServerTransport();
  transport.onclose = () => void shutdown('transport closed');
  await server.connect(transport);
  logger.info({ repo, pid: process.pid }, 'ratchet serving over stdio');
  return new Promise<number>(() => {}); // runs until shutdown exits the process
}

/** A ratchet.json that names the schema copy in .ratchet/ finds it on any machine where the server has started. */
function keepSchemaCopy(repo: string, logger: ReturnType<typeof createLogger>): void {
  try {
    const config = readFileSync(join(repo, CONFIG_FILE), 'utf8');
    if (config.includes(LOCAL_SCHEMA)) refreshLocalSchema(repo);
  } catch (err) {
    logger.debug({ err }, 'no schema copy refreshed');
  }
}

async function printStatus(repo: string, json: boolean): Promise<number> {
  const loop = new ResearchLoop({ repo, logger: createLogger({ stderr: false }) });
  return reportingFailure(async () => {
    const s = await loop.status();
    // Printing to stdout is right here: this is the CLI, not the MCP server.
    process.stdout.write(json ? `${JSON.stringify(s, null, 2)}\n` : forTerminal(statusText(s, { rule: s.session ? sessionRule(loop.ledger.activeSession()?.config) : null })));
    return 0;
  }, () => loop.close());
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ratchet: ${isRatchetError(err) ? err.toText() : (err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
