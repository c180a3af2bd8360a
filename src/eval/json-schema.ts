// Checks a value against the small JSON Schema subset a suite may use (schema.ts lists its keywords).
import { isDeepStrictEqual } from 'node:util';
import type { JsonSchema } from './schema.js';

/** The first place where `value` breaks `schema` ("$.title: is required"), or null when it conforms. */
export function schemaViolation(value: unknown, schema: JsonSchema, at = '$'): string | null {
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t))) return `${at}: is ${typeOf(value)}, not ${types.join(' or ')}`;
  }
  if (schema.enum !== undefined && !schema.enum.some((allowed) => isDeepStrictEqual(allowed, value))) return `${at}: is not one of the enum values`;
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) return `${at}: is shorter than ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && length > schema.maxLength) return `${at}: is longer than ${schema.maxLength} characters`;
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${at}: is below ${schema.minimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${at}: is above ${schema.maximum}`;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return `${at}: has fewer than ${schema.minItems} items`;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return `${at}: has more than ${schema.maxItems} items`;
    if (schema.items) {
      for (let i = 0; i < value.length; i++) {
        const inner = schemaViolation(value[i], schema.items, `${at}[${i}]`);
        if (inner) return inner;
      }
    }
  }
  if (isObject(value)) {
    for (const key of schema.required ?? []) if (!Object.hasOwn(value, key)) return `${at}.${key}: is required`;
    for (const [key, inner] of Object.entries(value)) {
      const sub = schema.properties?.[key];
      if (sub) {
        const problem = schemaViolation(inner, sub, `${at}.${key}`);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return `${at}.${key}: is not an allowed property`;
      }
    }
  }
  return null;
}

function hasType(value: unknown, type: string): boolean {
  if (type === 'integer') return Number.isInteger(value);
  return typeOf(value) === type;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
