// Ref names read from the files ref store (loose refs and packed-refs), as git reads them, without a process.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Names under `prefix` (ending in "/") in the ref store at `commonDir`, sorted. */
export async function refNamesOnDisk(commonDir: string, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  const packed = await readFile(join(commonDir, 'packed-refs'), 'utf8').catch(() => '');
  for (const line of packed.split('\n')) {
    const m = /^[0-9a-f]{40,64} (.+)$/.exec(line);
    if (m && m[1]!.startsWith(prefix)) names.add(m[1]!);
  }
  const visit = async (dir: string, name: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await visit(join(dir, entry.name), `${name}${entry.name}/`);
      // A loose ref file that holds no object id is a lock or a half-written file, not a ref.
      else if (entry.isFile() && !entry.name.endsWith('.lock') && /^[0-9a-f]{40,64}\s*$/.test(await readFile(join(dir, entry.name), 'utf8').catch(() => ''))) names.add(`${name}${entry.name}`);
    }
  };
  await visit(join(commonDir, prefix), prefix);
  return [...names].sort();
}
