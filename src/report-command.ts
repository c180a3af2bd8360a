// `ratchet report`: the morning report of a session (report.md, progress.png, progress.svg, report.html), written where the user asks.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ledgerPath } from './core/ledger.js';
import { ResearchLoop } from './core/loop.js';
import { buildReport, capsFromStatus, reportSession } from './core/report/report.js';
import { createLogger } from './log.js';

export async function runReport(repo: string, opts: { tag?: string; out?: string }): Promise<number> {
  if (!existsSync(ledgerPath(repo))) {
    process.stderr.write(`ratchet: ${repo} has no ledger yet. Start a session there (the start_session tool), or pass --repo with the project that ran one.\n`);
    return 1;
  }
  const loop = new ResearchLoop({ repo, logger: createLogger({ stderr: false }) });
  try {
    const session = reportSession(loop.ledger, opts.tag);
    if (!session) {
      process.stderr.write(
        opts.tag
          ? `ratchet: there is no session "${opts.tag}" in this repo's ledger. Run \`ratchet report\` without --tag for the latest one.\n`
          : 'ratchet: this repo has no session yet. Start one (the start_session tool), then run `ratchet report`.\n',
      );
      return 1;
    }
    // Caps and how the session finished come from status, which speaks for the active session only.
    const caps = session.active ? capsFromStatus(await loop.status().catch(() => null)) : null;
    const files = await buildReport(loop.ledger, session.id, { caps });
    const out = resolve(opts.out ?? join(repo, '.ratchet', 'report', session.tag));
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'report.md'), files.markdown);
    writeFileSync(join(out, 'progress.svg'), files.svg);
    writeFileSync(join(out, 'progress.png'), files.png);
    writeFileSync(join(out, 'report.html'), files.html);
    // The CLI's own output, not the MCP server's: stdout is free here.
    process.stdout.write(`Report of session ${session.tag} in ${out}: report.md, report.html, progress.png, progress.svg\n`);
    return 0;
  } finally {
    loop.close();
  }
}
