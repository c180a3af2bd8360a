// The dashboard's server without a browser: it never creates a ledger, pushes a new snapshot when another process writes, serves details and refuses writes.
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ResearchLoop } from '../../src/core/loop.js';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import { silentLogger } from '../../src/log.js';
import { finished } from '../helpers/loop.js';
import { makeRepo, TRAIN, EVALUATE, baseConfig, type TestRepo } from '../helpers/repo.js';

let repo: TestRepo | undefined;
let loop: ResearchLoop | undefined;
let dashboard: Dashboard | undefined;
afterEach(async () => {
  await dashboard?.close();
  if (loop) {
    await loop.settle();
    loop.close();
  }
  repo?.cleanup();
  dashboard = loop = repo = undefined;
});

/** Reads server-sent events from a stream until one satisfies `want`. */
async function nextEvent(reader: ReadableStreamDefaultReader<Uint8Array>, want: (name: string, data: any) => boolean): Promise<any> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the event stream ended');
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (name && data !== undefined && want(name, JSON.parse(data))) return JSON.parse(data);
    }
  }
}

describe('the dashboard server', () => {
  it('reads a repo without a ledger without creating one, then follows the session another process starts', async () => {
    repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off' }));
    dashboard = await startDashboard({ repo: repo.dir, logger: silentLogger(), port: 0 });
    const base = `http://127.0.0.1:${dashboard.port}`;
    const empty = await (await fetch(`${base}/api/snapshot`)).json();
    expect(empty.session).toBeNull();
    expect(empty.message).toContain('No session has run');
    expect(existsSync(join(repo.dir, '.ratchet', 'ratchet.db'))).toBe(false);

    const events = await fetch(`${base}/api/events`);
    expect(events.headers.get('content-type')).toContain('text/event-stream');
    const reader = events.body!.getReader();
    const first = await nextEvent(reader, (name) => name === 'snapshot');
    expect(first.session).toBeNull();

    // Another ledger connection writes (here an in-process loop, as `ratchet serve` would): the open stream gets the news.
    loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    const { baseline } = await loop.startSession({ tag: 'live' });
    await finished(loop, baseline.id);
    const measured = await nextEvent(reader, (name, s) => name === 'snapshot' && s.experiments.some((e: { state: string }) => e.state === 'measured'));
    expect(measured.tag).toBe('live');
    expect(measured.sessions).toEqual([expect.objectContaining({ tag: 'live', active: true })]);
    expect(measured.experiments[0]).toMatchObject({ id: baseline.id, kind: 'baseline', metric: 1 });
    expect(measured.status.session.tag).toBe('live');
    expect(measured.chart.svg).toContain('<svg');
    await reader.cancel();
  });

  it('serves an experiment\'s detail, 404 for an unknown one, and refuses anything but GET', async () => {
    repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off' }));
    loop = new ResearchLoop({ repo: repo.dir, logger: silentLogger() });
    const { baseline } = await loop.startSession({ tag: 'd' });
    await finished(loop, baseline.id);
    dashboard = await startDashboard({ repo: repo.dir, logger: silentLogger(), port: 0 });
    const base = `http://127.0.0.1:${dashboard.port}`;
    const detail = await (await fetch(`${base}/api/experiments/${baseline.id}`)).json();
    expect(detail.experiment.id).toBe(baseline.id);
    expect(detail.logTail).toContain('score:');
    const unknown = await fetch(`${base}/api/experiments/999`);
    expect(unknown.status).toBe(404);
    expect(await unknown.text()).toContain('No experiment 999');
    expect((await fetch(`${base}/api/snapshot`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/nothing-here`)).status).toBe(404);
    const page = await fetch(`${base}/`);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    // Nothing is fetched from elsewhere: no CDN, no external font or script.
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(await (await fetch(`${base}/app.js`)).text()).not.toMatch(/https?:\/\//);
  });
});
