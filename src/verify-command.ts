// `ratchet verify` and `ratchet integrity`: the user's own checks of a night's evidence, run outside any agent.
import { LoopContext } from './core/context.js';
import { Integrity } from './core/integrity.js';
import { verifySession } from './core/verify-session.js';
import { createLogger } from './log.js';

export async function runVerify(repo: string, opts: { tag?: string; runs: number; json: boolean }): Promise<number> {
  const logger = createLogger({ stderr: false });
  const ctx = new LoopContext({ repo, logger });
  try {
    const session = ctx.ledger.activeSession() ?? ctx.ledger.latestSession();
    const sandbox = await ctx.executorFor(session ? ctx.configOf(session) : { sandbox: 'auto' }).sandbox();
    if (!opts.json) process.stdout.write(`Verifying in ${sandbox.kind === 'none' ? 'no sandbox' : `a ${sandbox.kind} sandbox`}, ${opts.runs} run(s) per commit.\n`);
    const result = await verifySession(ctx, {
      tag: opts.tag,
      runs: opts.runs,
      onCheck: (c) => {
        if (!opts.json) process.stdout.write(`${c.commit.slice(0, 7)}  #${c.experimentId ?? '-'}  ${c.status}: ${c.why}\n`);
      },
    });
    if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      for (const f of result.ledgerFindings) process.stdout.write(`ledger: ${f}\n`);
      process.stdout.write(result.ok ? `Session ${result.tag}: every kept commit reproduced.\n` : `Session ${result.tag}: NOT verified (see above).\n`);
    }
    return result.ok ? 0 : 1;
  } finally {
    ctx.closeLedger();
    ctx.git.close();
  }
}

export async function runIntegrity(repo: string, opts: { accept: boolean; json: boolean }): Promise<number> {
  const logger = createLogger({ stderr: false });
  const ctx = new LoopContext({ repo, logger });
  try {
    const integrity = new Integrity(ctx);
    const findings = await integrity.checkAtStart();
    if (opts.accept) {
      await integrity.accept('accepted by the user with `ratchet integrity --accept`');
      process.stdout.write(`Accepted ${findings.length} finding(s); the ledger's chain is resealed (the accept is recorded in it). A running ratchet server takes the cleared state on its next tool call.\n`);
      return 0;
    }
    if (opts.json) process.stdout.write(`${JSON.stringify({ ok: findings.length === 0, findings }, null, 2)}\n`);
    else process.stdout.write(findings.length ? `${findings.map((f) => `- ${f.what}`).join('\n')}\n` : 'No tampering found.\n');
    return findings.length ? 1 : 0;
  } finally {
    ctx.closeLedger();
    ctx.git.close();
  }
}
