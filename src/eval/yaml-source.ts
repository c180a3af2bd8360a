// A suite file (YAML or JSON) read with the position of every node, so each problem can name its file:line:col.
import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';

export type KeyPath = (string | number)[];

/** One thing wrong with a suite file, placed at the node it is about. */
export interface SuiteProblem {
  /** "evals/cases/deadline.yaml:7:5" */
  where: string;
  /** "assertions[2].maxWords must be a positive whole number" */
  message: string;
}

export interface SourceFile {
  /** The path shown in messages (relative to the repo). */
  shown: string;
  /** The parsed value, or undefined when the file did not parse (see problems). */
  value: unknown;
  problems: SuiteProblem[];
  /** "file:line:col" of the value at `path`, or of the nearest enclosing node that exists. */
  locate(path: KeyPath, opts?: { key?: string }): string;
}

export function readSource(file: string, shown: string): SourceFile {
  const lines = new LineCounter();
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return `${shown}:${line}:${col}`;
  };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const problem = { where: shown, message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
    return { shown, value: undefined, problems: [problem], locate: () => shown };
  }
  // uniqueKeys: a repeated key would otherwise let the second silently replace the first.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  // The first syntax error only: the parser's later ones are mostly echoes of it.
  const problems = doc.errors.slice(0, 1).map((e) => ({ where: at(e.pos[0]), message: syntaxMessage(e.message) }));
  return {
    shown,
    value: problems.length ? undefined : doc.toJS({ maxAliasCount: 100 }),
    problems,
    locate: (path, opts) => at(offsetOf(doc, path, opts?.key)),
  };
}

/** "path.to[2].key" for messages; the empty path reads as "the file". */
export function formatPath(path: KeyPath, key?: string): string {
  const full = key === undefined ? path : [...path, key];
  let out = '';
  for (const segment of full) out += typeof segment === 'number' ? `[${segment}]` : out ? `.${segment}` : segment;
  return out || 'the file';
}

function offsetOf(doc: Document, path: KeyPath, key: string | undefined): number {
  // Walk down as far as the path exists: a missing key is reported at the mapping that lacks it.
  let node: unknown = doc.contents;
  for (const segment of path) {
    const next = isMap(node) || isSeq(node) ? childOf(node, segment) : undefined;
    if (!next) break;
    node = next;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
    const keyNode = pair && isScalar(pair.key) ? pair.key : undefined;
    if (keyNode?.range) return keyNode.range[0];
  }
  const range = (node as Node | null)?.range;
  return range ? range[0] : 0;
}

function childOf(node: Node, segment: string | number): Node | undefined {
  if (isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
    return (pair?.value as Node | null) ?? undefined;
  }
  return isSeq(node) && typeof segment === 'number' ? ((node.items[segment] as Node | null) ?? undefined) : undefined;
}

/** The parser's message without its own position suffix: the position is printed in front. */
function syntaxMessage(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return `is not valid YAML or JSON: ${first.replace(/ at line \d+, column \d+:?$/, '')}`;
}
