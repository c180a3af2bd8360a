// The tool registry: every tool ratchet serves, in the order an agent meets them.
import type { AnyToolDefinition } from './define.js';
import { startSession } from './start-session.js';
import { runExperiment } from './run-experiment.js';
import { waitExperiment } from './wait-experiment.js';
import { readMetric } from './read-metric.js';
import { keep } from './keep.js';
import { revert } from './revert.js';
import { sync } from './sync.js';
import { status } from './status.js';
import { listExperiments } from './list-experiments.js';
import { readLog } from './read-log.js';
import { cancelExperiment } from './cancel-experiment.js';
import { stopSession } from './stop-session.js';

export const tools: AnyToolDefinition[] = [
  startSession,
  runExperiment,
  waitExperiment,
  readMetric,
  keep,
  revert,
  sync,
  status,
  listExperiments,
  readLog,
  cancelExperiment,
  stopSession,
];
