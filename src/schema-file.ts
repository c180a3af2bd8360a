// Where a project's ratchet.json finds its JSON Schema: the installed package's copy when the project has one, else a
// copy ratchet keeps in .ratchet/ (written by `ratchet init` and refreshed by every server start), so editors resolve it
// however ratchet was installed: as a dependency, globally, or from a checkout.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOCAL_SCHEMA = '.ratchet/ratchet.schema.json';
const PACKAGE_SCHEMA = 'node_modules/ratchet-mcp/schema/ratchet.schema.json';

/** The schema this package ships (schema/ beside dist/ and src/). */
export function shippedSchemaPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'ratchet.schema.json');
}

/** The `$schema` value for a new ratchet.json in `repo`, relative to it; the file it names exists once this returns. */
export function schemaReference(repo: string): string {
  if (existsSync(join(repo, PACKAGE_SCHEMA))) return `./${PACKAGE_SCHEMA}`;
  refreshLocalSchema(repo);
  return `./${LOCAL_SCHEMA}`;
}

/** Writes .ratchet/ratchet.schema.json when it is missing or differs from the shipped one; a failure changes nothing else. */
export function refreshLocalSchema(repo: string): void {
  const shipped = readFileSync(shippedSchemaPath());
  const target = join(repo, LOCAL_SCHEMA);
  if (existsSync(target) && readFileSync(target).equals(shipped)) return;
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, shipped);
}
