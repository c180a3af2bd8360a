// The core is MCP-free: no file under src/core imports the MCP SDK, so the loop runs and tests without any protocol.
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CORE = fileURLToPath(new URL('../../src/core', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('layering', () => {
  it('no core file imports @modelcontextprotocol/sdk', () => {
    const files = sources(CORE);
    expect(files.length).toBeGreaterThan(20);
    const offenders = files.filter((f) => /from ['"]@modelcontextprotocol\//.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});
