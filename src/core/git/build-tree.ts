// Trees built from a base tree and a set of path changes, written as objects; only the trees on changed paths are touched.
import { encodeTree, type ObjectStore } from './objects.js';
import type { TreeEntry } from './run.js';

/** The id of `baseTree` (none: empty) with `set` entries added or replaced and `removed` paths deleted. */
export async function buildTree(objects: ObjectStore, baseTree: string | null, set: Map<string, TreeEntry>, removed: string[]): Promise<string> {
    // Changes grouped by directory; removals first, so a file can replace a removed directory's contents.
    interface Edit { entries: Map<string, TreeEntry | null>; dirs: Map<string, Edit> }
    const root: Edit = { entries: new Map(), dirs: new Map() };
    const at = (path: string): [Edit, string] => {
      const parts = path.split('/');
      let node = root;
      for (const part of parts.slice(0, -1)) {
        let next = node.dirs.get(part);
        if (!next) node.dirs.set(part, (next = { entries: new Map(), dirs: new Map() }));
        node = next;
      }
      return [node, parts[parts.length - 1]!];
    };
    for (const path of removed) if (!set.has(path)) { const [node, name] = at(path); node.entries.set(name, null); }
    for (const [path, e] of set) { const [node, name] = at(path); node.entries.set(name, e); }
    const write = async (oid: string | null, edit: Edit, isRoot: boolean): Promise<string | null> => {
      const entries = oid ? await objects.readTree(oid) : new Map<string, TreeEntry>();
      for (const [name, e] of edit.entries) {
        if (e) entries.set(name, e);
        else entries.delete(name);
      }
      for (const [name, sub] of edit.dirs) {
        const existing = entries.get(name);
        const child = await write(existing?.mode === '040000' ? existing.oid : null, sub, false);
        if (child) entries.set(name, { mode: '040000', oid: child });
        else entries.delete(name);
      }
      // An emptied directory disappears, as in git's index.
      if (!entries.size && !isRoot) return null;
      return objects.write('tree', encodeTree([...entries]));
    };
    return (await write(baseTree, root, true))!;
}
