// status: where the session stands and what to do next.
import { agentField, defineTool } from './define.js';
import { StatusSchema } from '../core/views.js';
import { statusLines } from '../status-text.js';

export const status = defineTool({
  name: 'status',
  title: 'Session status',
  description:
    'Call when resuming, or whenever unsure what to do next. Shows the session, the best experiment so far, counts by state, the running experiment and its elapsed time, ' +
    'a candidate awaiting a decision, the sandbox in force, any tampering found, the calibrated noise and smallest detectable effect, runs spent, whether the loop has reached a plateau, each cap of limits (used and limit), whether the session is finished (a cap reached or the user\'s stop), whether ratchet.json is valid, and the next step.',
  kind: 'read',
  idempotent: true,
  input: { agent: agentField.optional().describe('Narrow the in-flight, queued and awaiting lists to one agent\'s experiments.') },
  output: StatusSchema.shape,
  async handler(args, { loop }) {
    const s = await loop.status({ agent: args.agent });
    const best = s.session ? `best ${s.session.metricName} ${s.session.bestMetric ?? 'not measured yet'} (baseline ${s.session.baselineMetric ?? 'n/a'})` : 'no session';
    return { summary: `${s.session ? `Session ${s.session.tag}: ` : ''}${best}. ${s.next}`, ...s };
  },
  // The summary already ends with the next step.
  text: (s) => statusLines(s, { next: false }),
});
