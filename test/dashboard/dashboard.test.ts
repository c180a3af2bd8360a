// The dashboard in a real Chromium beside a real `ratchet serve`: the table and chart render, a new experiment appears live, diffs open, sessions switch, the token gates a non-loopback bind.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { makeRepo, TRAIN, EVALUATE, baseConfig, setConstant, type TestRepo } from '../helpers/repo.js';
import { CLI, connectServer, type ServerClient } from '../helpers/server.js';

const HAS_CHART = existsSync(fileURLToPath(new URL('../../dist/core/report/chart.js', import.meta.url)));
/** Waits for what the page should show; generous, because two busy cores can be slow, and never an assertion on time. */
const SHOWN_WITHIN_MS = 30_000;

/** The distribution's Chromium (apt's `chromium`), or RATCHET_CHROMIUM; playwright-core downloads no browser. */
function findChromium(): string | null {
  if (process.env.RATCHET_CHROMIUM) return existsSync(process.env.RATCHET_CHROMIUM) ? process.env.RATCHET_CHROMIUM : null;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome']) {
    for (const dir of (process.env.PATH ?? '').split(':')) {
      if (dir.startsWith('/') && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

const executablePath = findChromium();
const SKIPPED = executablePath
  ? ''
  : process.env.RATCHET_CHROMIUM
    ? ` (SKIPPED: RATCHET_CHROMIUM is ${process.env.RATCHET_CHROMIUM}, which does not exist)`
    : ' (SKIPPED: no Chromium found; run `npm run setup:browser`, or set RATCHET_CHROMIUM to a Chromium binary)';
if (!executablePath) process.stderr.write(`dashboard.test:${SKIPPED}\n`);


/** `ratchet dashboard` as a user starts it; resolves with the URL it prints on stderr. */
function startDashboard(repo: string, extra: string[] = []): Promise<{ child: ChildProcess; url: URL }> {
  const child = spawn(process.execPath, [CLI, 'dashboard', '--repo', repo, '--port', '0', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /(http:\/\/\S+)/.exec(stderr);
      if (m) resolve({ child, url: new URL(m[1]!) });
    });
    child.on('exit', (code) => reject(new Error(`ratchet dashboard exited with ${code}: ${stderr}`)));
  });
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** A GET with a chosen Host header, which fetch does not let a caller set. */
function statusWithHost(url: URL, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ hostname: url.hostname, port: url.port, path: '/', headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!executablePath)(`the dashboard in a real browser${SKIPPED}`, () => {
  let repo: TestRepo;
  let server: ServerClient;
  let browser: Browser;
  let dashboard: ChildProcess | undefined;
  let url: URL;
  const call = (name: string, args: Record<string, unknown> = {}) => server.ok(name, args);
  const finish = (id: number) => server.finish(id);

  beforeAll(async () => {
    repo = makeRepo({ 'train.mjs': TRAIN, 'evaluate.mjs': EVALUATE }, baseConfig({ sandbox: 'off', limits: { maxExperiments: 20 } }));
    server = await connectServer(repo.dir);
    await finish((await call('start_session', { tag: 'night' })).baseline.id);
    setConstant(repo, 'SCORE', '0.5');
    const kept = await finish((await call('run_experiment', { description: 'halve the score <b>bold</b>', wait_seconds: 1 })).experiment.id);
    await call('keep', { id: kept.id });
    ({ child: dashboard, url } = await startDashboard(repo.dir));
    browser = await chromium.launch({ executablePath: executablePath! });
  });

  afterAll(async () => {
    await browser?.close();
    await stop(dashboard);
    await server?.close();
    repo?.cleanup();
  });

  function watchConsole(page: Page): string[] {
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (err) => errors.push(err.message));
    return errors;
  }

  it('renders the table and chart, follows a new experiment live, opens its diff and switches sessions', async () => {
    expect(url.hostname).toBe('127.0.0.1');
    expect(url.searchParams.has('token')).toBe(false);
    const page = await browser.newPage();
    const errors = watchConsole(page);
    await page.goto(url.href);

    const row = (id: number) => page.locator(`#experiments tbody tr[data-id="${id}"]`);
    await row(2).waitFor({ timeout: SHOWN_WITHIN_MS });
    expect(await page.locator('#experiments tbody tr').count()).toBe(2);
    // Agent-written text is shown as text, never as markup.
    expect(await row(2).textContent()).toContain('halve the score <b>bold</b>');
    expect(await row(2).locator('b').count()).toBe(0);
    expect(await row(2).textContent()).toContain('kept');
    expect(await row(1).textContent()).toContain('baseline');
    // The chart is an image that decoded: the report's chart, where this build has it.
    await page.waitForFunction(() => {
      const img = document.getElementById('chart') as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth > 0;
    }, undefined, { timeout: SHOWN_WITHIN_MS });
    if (HAS_CHART) expect(await page.locator('#chart').getAttribute('data-placeholder')).toBe('false');
    expect(await page.locator('#summary').textContent()).toContain('0.5 (#2)');
    // The caps in force, from status.
    expect(await page.locator('#status').textContent()).toContain('experiments cap1 of 20');

    // A new experiment, started by the agent while the page is open: it shows as running, then in the table, with no reload.
    await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
    setConstant(repo, 'SCORE', '2.0');
    setConstant(repo, 'SLEEP_MS', '3000');
    const started = await call('run_experiment', { description: 'double the score', wait_seconds: 0 });
    const id = started.experiment.id as number;
    await page.locator('#running').getByText(`#${id} double the score`).waitFor({ timeout: SHOWN_WITHIN_MS });
    await finish(id);
    await row(id).getByText('measured').waitFor({ timeout: SHOWN_WITHIN_MS });
    expect(await row(id).textContent()).toContain('double the score');
    expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
    await page.locator('#running').getByText('Nothing is running.').waitFor({ timeout: SHOWN_WITHIN_MS });

    // Its diff is one click away.
    await row(id).locator('button.show').click();
    const diff = page.locator('#detail-body pre.diff');
    await diff.waitFor({ timeout: SHOWN_WITHIN_MS });
    expect(await diff.textContent()).toContain('+const SCORE = 2.0;');
    expect(await diff.textContent()).toContain('-const SCORE = 0.5;');
    expect(await page.locator('#detail-body pre.log').textContent()).toContain('score:');
    await page.locator('#detail button.close').click();

    // A second session: the page follows the active one, and the first stays one choice away.
    await call('revert', { id });
    await finish((await call('start_session', { tag: 'morning', replace: true })).baseline.id);
    await page.locator('#session option', { hasText: 'morning (active)' }).waitFor({ state: 'attached', timeout: SHOWN_WITHIN_MS });
    await page.waitForFunction(() => document.querySelectorAll('#experiments tbody tr').length === 1, undefined, { timeout: SHOWN_WITHIN_MS });
    await page.locator('#session').selectOption('night');
    await row(id).waitFor({ timeout: SHOWN_WITHIN_MS });
    expect(await page.locator('#experiments tbody tr').count()).toBe(3);
    expect(new URL(page.url()).searchParams.get('tag')).toBe('night');

    // The user stops the night: the active session's page says it is finished, and why.
    await page.locator('#session').selectOption('morning');
    await call('stop_session', {});
    await page.locator('#finished').getByText('This session is finished').waitFor({ timeout: SHOWN_WITHIN_MS });

    expect(errors).toEqual([]);
    await page.close();
  });

  it('bound beyond loopback, refuses every request without the printed token', async () => {
    const open = await startDashboard(repo.dir, ['--host', '0.0.0.0']);
    try {
      const token = open.url.searchParams.get('token');
      expect(token).toMatch(/^[\w-]{32}$/);
      const base = `http://127.0.0.1:${open.url.port}`;
      for (const path of ['/', '/app.js', '/api/snapshot', '/api/events', '/api/experiments/1']) {
        const refused = await fetch(`${base}${path}`);
        expect(refused.status, path).toBe(403);
        expect(await refused.text()).toContain('needs the token');
      }
      expect((await fetch(`${base}/api/snapshot?token=${'x'.repeat(32)}`)).status).toBe(403);
      const allowed = await fetch(`${base}/api/snapshot?token=${token}`);
      expect(allowed.status).toBe(200);
      expect((await allowed.json()).tag).toBe('morning');
      // The token reaches the page's script and its event stream: the page works when opened with it.
      const page = await browser.newPage();
      const errors = watchConsole(page);
      await page.goto(`${base}/?token=${token}`);
      await page.locator('#experiments tbody tr').first().waitFor({ timeout: SHOWN_WITHIN_MS });
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await stop(open.child);
    }
    // On loopback no token is needed, but a page that reached it under another name (DNS rebinding) is refused.
    expect(await statusWithHost(url, `127.0.0.1:${url.port}`)).toBe(200);
    expect(await statusWithHost(url, 'attacker.example')).toBe(403);
  });
});
