// Regenerates schema/ratchet.schema.json from the zod schema in the build (run after tsc).
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../dist/core/config.js';

writeFileSync(new URL('../schema/ratchet.schema.json', import.meta.url), `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
