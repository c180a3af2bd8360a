#!/usr/bin/env node
// ratchet CLI: serve (default) | init | status | demo.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { existsSync, writeFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from './server.js';
import { createLogger } from './log.js';
import { CONFIG_FILE, loadConfig, starterConfig } from './core/config.js';
import { ResearchLoop } from './core/loop.js';
import { isRatchetError } from './core/errors.js';

const USAGE = `Usage: ratchet [serve|init|status|verify|integrity|demo] [--repo DIR]

  serve   (default) the stdio MCP server for the repo
  init    write a starter ratchet.json
  status  print what the status tool returns, as JSON
  verify  re-measure the kept commits of a session (--tag T, --runs N, --json); exits 1 if any did not reproduce
  integrity  report tampering with ratchet's evidence; --accept reseals it once you have looked
  demo    run the scripted demo loop on examples/tiny-lm in a temporary repo

The repo is --repo, else $CLAUDE_PROJECT_DIR, else the current directory.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      force: { type: 'boolean' },
      keep: { type: 'boolean' },
      tag: { type: 'string' },
      runs: { type: 'string' },
      json: { type: 'boolean' },
      accept: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'serve';
  const repo = resolve(values.repo ?? process.env.CLAUDE_PROJECT_DIR ?? process.cwd());
  if (command !== 'demo' && (!existsSync(repo) || !statSync(repo).isDirectory())) {
    process.stderr.write(`ratchet: ${repo} is not a directory. Pass --repo with your project's path.\n`);
    return 2;
  }
  switch (command) {
    case 'serve':
      return serve(repo);
    case 'init':
      return init(repo, values.force === true);
    case 'status':
      return printStatus(repo);
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
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      return runDemo({ keep: values.keep === true });
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
  const transport = new StdioServerTransport();
  transport.onclose = () => void shutdown('transport closed');
  await server.connect(transport);
  logger.info({ repo, pid: process.pid }, 'ratchet serving over stdio');
  return new Promise<number>(() => {}); // runs until shutdown exits the process
}

function init(repo: string, force: boolean): number {
  const file = join(repo, CONFIG_FILE);
  if (existsSync(file) && !force) {
    process.stderr.write(`ratchet: ${CONFIG_FILE} already exists. Edit it, or pass --force to overwrite it.\n`);
    return 1;
  }
  writeFileSync(file, `${JSON.stringify(starterConfig(), null, 2)}\n`);
  process.stderr.write(`Wrote ${file}. Set editable, protected, run.command and metric for your project, then commit it.\n`);
  return 0;
}

async function printStatus(repo: string): Promise<number> {
  const loop = new ResearchLoop({ repo, logger: createLogger({ stderr: false }) });
  try {
    // Printing to stdout is right here: this is the CLI, not the MCP server.
    process.stdout.write(`${JSON.stringify(await loop.status(), null, 2)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`ratchet: ${isRatchetError(err) ? err.toText() : String(err)}\n`);
    return 1;
  } finally {
    loop.close();
  }
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
