// The real Claude Code and Codex CLIs for the client tests, installed once from npm into a cache folder outside the repo.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Pinned so a client's new release cannot break the suite silently; bump on purpose.
export const CLIENTS = ['@anthropic-ai/claude-code@2.1.197', '@openai/codex@0.171.0'];
// Kept between runs: the clients are large, and reinstalling them each run is slow.
const CLIENT_DIR = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ratchet-test-clients');

/** The two executables, or null (with the reason on stderr) where npm cannot install them. */
export function installClients(): { claude: string; codex: string } | null {
  const bin = (name: string) => join(CLIENT_DIR, 'node_modules', '.bin', name);
  if (!existsSync(bin('claude')) || !existsSync(bin('codex'))) {
    mkdirSync(CLIENT_DIR, { recursive: true });
    const r = spawnSync('npm', ['install', '--prefix', CLIENT_DIR, '--no-audit', '--no-fund', '--no-save', ...CLIENTS], { stdio: 'pipe', timeout: 240_000 });
    if (r.status !== 0) {
      process.stderr.write(`could not install ${CLIENTS.join(', ')} from the npm registry, so the client tests are skipped:\n${r.stderr.toString().slice(-500)}\n`);
      return null;
    }
  }
  return { claude: bin('claude'), codex: bin('codex') };
}
