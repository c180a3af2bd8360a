// Plumbing for tests that drive a ResearchLoop directly: cleanup, following a run to its end, catching a refusal.
import { afterEach, expect } from 'vitest';
import type { ResearchLoop } from '../../src/core/loop.js';
import { RatchetError } from '../../src/core/errors.js';
import type { TestRepo } from './repo.js';

/** Lists whose loops are settled and closed, and whose repos are deleted, after each test. */
export function cleanedUpAfterEach(): { repos: TestRepo[]; loops: ResearchLoop[] } {
  const repos: TestRepo[] = [];
  const loops: ResearchLoop[] = [];
  afterEach(async () => {
    for (const l of loops.splice(0)) {
      await l.settle();
      l.close();
    }
    for (const r of repos.splice(0)) r.cleanup();
  });
  return { repos, loops };
}

export async function finished(loop: ResearchLoop, id: number) {
  for (;;) {
    const e = await loop.waitExperiment(id, 10);
    if (e.state !== 'running' && e.state !== 'queued') return e;
  }
}

export async function startWithBaseline(loop: ResearchLoop) {
  const { baseline } = await loop.startSession({ tag: 't1' });
  return finished(loop, baseline.id);
}

export async function rejection(p: Promise<unknown> | (() => unknown)): Promise<RatchetError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(RatchetError);
    return err as RatchetError;
  }
  throw new Error('expected a RatchetError');
}
