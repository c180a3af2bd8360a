// defineTool: each tool is declared once (name, kind, schemas, handler); annotations and results derive from it.
import { AGENT_NAME } from '../core/agents/home.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { Logger } from 'pino';
import { RatchetError, isRatchetError } from '../core/errors.js';
import type { ResearchLoop, Progress } from '../core/loop.js';

/**
 * The one semantic fact a client needs to decide on approval prompts:
 * read (looks only), write (adds state, never discards), destructive (may discard or kill something).
 */
export type ToolKind = 'read' | 'write' | 'destructive';

export function annotationsFor(kind: ToolKind, idempotent: boolean, title: string): ToolAnnotations {
  return {
    title,
    readOnlyHint: kind === 'read',
    destructiveHint: kind === 'destructive',
    idempotentHint: idempotent,
    // Everything happens in the local repo and on this machine.
    openWorldHint: false,
  };
}

export interface ToolContext {
  loop: ResearchLoop;
  log: Logger;
  /** Sends an MCP progress notification when the client asked for them. */
  progress: (p: Progress) => void;
}

export interface ToolDefinition<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  name: string;
  title: string;
  description: string;
  kind: ToolKind;
  idempotent: boolean;
  input: I;
  output: O;
  handler: (args: z.infer<z.ZodObject<I>>, ctx: ToolContext) => Promise<z.infer<z.ZodObject<O>> & { summary: string }>;
  /**
   * The lines after the summary in the result's text: the few facts the agent acts on, compact.
   * The structured content carries the whole result; repeating it as pretty JSON doubled every result in the agent's context.
   */
  text?: (result: z.infer<z.ZodObject<O>>) => string[];
}

export type AnyToolDefinition = ToolDefinition<z.ZodRawShape, z.ZodRawShape>;

export const summaryField = { summary: z.string().describe('One line for a person reading the transcript.') };

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(def: ToolDefinition<I, O>): AnyToolDefinition {
  return def as unknown as AnyToolDefinition;
}

/** Fallback text for a tool without its own: one `key: value` line per field that has a value, values as compact JSON. */
export function compactLines(result: Record<string, unknown>): string[] {
  return Object.entries(result)
    .filter(([key, v]) => key !== 'summary' && v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .map(([key, v]) => `${key}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
}

/** The text content of a result: the summary line, then the tool's compact lines. */
export function resultText(def: AnyToolDefinition, result: Record<string, unknown> & { summary: string }): string {
  return [result.summary, ...(def.text ? def.text(result as never) : compactLines(result))].join('\n');
}

export function errorResult(err: unknown): CallToolResult {
  const e = isRatchetError(err)
    ? err
    : new RatchetError('internal', `Internal error: ${(err as Error)?.message ?? String(err)}`, 'Call status to see where the session stands; if this repeats, report it with .ratchet/server.log.');
  // The details (the id a stale candidate is measured again as, the conflicting paths) as one JSON line a client can read.
  const details = e.details && Object.keys(e.details).length ? `\nDetails: ${JSON.stringify(e.details)}` : '';
  return { isError: true, content: [{ type: 'text', text: `[${e.code}] ${e.toText()}${details}` }] };
}

export function registerTool(server: McpServer, def: AnyToolDefinition, getLoop: () => ResearchLoop, log: Logger): void {
  server.registerTool(
    def.name,
    {
      title: def.title,
      description: def.description,
      inputSchema: def.input,
      outputSchema: { ...summaryField, ...def.output },
      annotations: annotationsFor(def.kind, def.idempotent, def.title),
    },
    async (args: Record<string, unknown>, extra) => {
      const token = extra._meta?.progressToken;
      let step = 0;
      const progress = (p: Progress) => {
        if (token === undefined) return;
        step++;
        const message = `${p.phase}: ${p.elapsedSeconds}s of ${p.budgetSeconds}s${p.lastLogLine ? ` | ${p.lastLogLine.slice(0, 200)}` : ''}`;
        void extra
          .sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: step, message } })
          .catch((err: unknown) => log.debug({ err }, 'progress notification failed'));
      };
      try {
        const result = await def.handler(args as never, { loop: getLoop(), log, progress });
        return { structuredContent: result, content: [{ type: 'text', text: resultText(def, result) }] };
      } catch (err) {
        if (!isRatchetError(err)) log.error({ err, tool: def.name }, 'tool failed');
        else log.info({ tool: def.name, code: err.code }, err.message.split('\n')[0]);
        return errorResult(err);
      }
    },
  );
}

/** An agent's name, as `ratchet worktree add` gives it ("main" is the repo's own worktree). */
export const agentField = z.string().regex(AGENT_NAME, 'an agent name: lowercase letters, digits and dashes, as `ratchet worktree add` gave it');
