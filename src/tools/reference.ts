// The README's tool reference, generated from the registry so the docs cannot drift from the code.
import { z } from 'zod';
import { tools } from './index.js';
import { annotationsFor } from './define.js';

interface JsonSchemaProp {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  anyOf?: JsonSchemaProp[];
  maximum?: number;
  minimum?: number;
}

function typeOf(p: JsonSchemaProp): string {
  if (p.enum) return p.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (p.anyOf) return p.anyOf.map(typeOf).join(' \\| ');
  return Array.isArray(p.type) ? p.type.join(' \\| ') : p.type ?? 'any';
}

export function toolReference(): string {
  const out: string[] = [];
  for (const def of tools) {
    const a = annotationsFor(def.kind, def.idempotent, def.title);
    const flags = [a.readOnlyHint ? 'read-only' : 'writes', a.destructiveHint ? 'destructive' : 'non-destructive', a.idempotentHint ? 'idempotent' : 'not idempotent'];
    out.push(`### \`${def.name}\``, '', `*${def.title}* — ${flags.join(', ')}.`, '', def.description, '');
    const schema = z.toJSONSchema(z.object(def.input), { io: 'input' }) as { properties?: Record<string, JsonSchemaProp>; required?: string[] };
    const props = Object.entries(schema.properties ?? {});
    if (props.length) {
      out.push('| argument | type | required | meaning |', '|---|---|---|---|');
      for (const [name, p] of props) {
        out.push(`| \`${name}\` | ${typeOf(p)} | ${schema.required?.includes(name) ? 'yes' : 'no'} | ${(p.description ?? '').replace(/\|/g, '\\|')} |`);
      }
      out.push('');
    } else {
      out.push('No arguments.', '');
    }
  }
  return out.join('\n').trimEnd();
}
