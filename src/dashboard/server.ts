// The dashboard's web server: node:http, read-only routes, server-sent events, and a token whenever it listens beyond loopback.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { isRatchetError } from '../core/errors.js';
import { CLIENT_JS } from './client.js';
import { PAGE_CSS, pageHtml } from './page.js';
import { DashboardData, type Snapshot } from './snapshot.js';

export const DEFAULT_PORT = 4177;
const POLL_MS = 500;
const PROGRESS_MS = 2_000;
const HEARTBEAT_MS = 15_000;

export interface DashboardOptions {
  repo: string;
  logger: Logger;
  host?: string;
  port?: number;
}

export interface Dashboard {
  /** The address to open, with the token when one is required. */
  url: string;
  token: string | null;
  port: number;
  close(): Promise<void>;
}

interface Watcher {
  res: ServerResponse;
  tag: string | null;
  /** The ledger version of the last snapshot it was sent. */
  version: number;
  /** The chart it holds, so an unchanged chart is not sent again. */
  chartKey: string | null;
}

const SECURITY_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.logger;
  // Beyond loopback anyone on the network could read the night's code and logs: a random token gates every request.
  const token = isLoopback(host) ? null : randomBytes(24).toString('base64url');
  const data = new DashboardData(opts.repo, log);
  const watchers = new Set<Watcher>();

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const unknown = isRatchetError(err) && err.code === 'unknown_experiment';
      if (!unknown) log.error({ err, url: req.url }, 'dashboard request failed');
      if (!res.headersSent) send(res, unknown ? 404 : 500, 'text/plain; charset=utf-8', `ratchet dashboard: ${isRatchetError(err) ? err.toText() : String(err)}\n`);
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (token === null && !loopbackHostHeader(req.headers.host)) {
      // A page elsewhere that resolves its own name to 127.0.0.1 (DNS rebinding) must not read the dashboard.
      return send(res, 403, 'text/plain; charset=utf-8', 'ratchet dashboard: open it as http://127.0.0.1 or http://localhost.\n');
    }
    if (token !== null && !sameToken(url.searchParams.get('token'), token)) {
      return send(res, 403, 'text/plain; charset=utf-8', 'ratchet dashboard: this address needs the token that `ratchet dashboard` printed when it started; open the URL it printed.\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'ratchet dashboard: read-only; only GET is served.\n');
    const query = token === null ? '' : `?token=${encodeURIComponent(token)}`;
    const detail = /^\/api\/experiments\/(\d+)$/.exec(url.pathname);
    if (detail) return send(res, 200, 'application/json', JSON.stringify(await data.detail(Number(detail[1]))));
    switch (url.pathname) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', pageHtml(query));
      case '/app.js':
        return send(res, 200, 'text/javascript; charset=utf-8', CLIENT_JS);
      case '/app.css':
        return send(res, 200, 'text/css; charset=utf-8', PAGE_CSS);
      case '/api/snapshot':
        return send(res, 200, 'application/json', JSON.stringify(await data.snapshot(url.searchParams.get('tag'))));
      case '/api/events':
        return watch(res, url.searchParams.get('tag'));
      default:
        return send(res, 404, 'text/plain; charset=utf-8', 'ratchet dashboard: no such page.\n');
    }
  }

  async function watch(res: ServerResponse, tag: string | null): Promise<void> {
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    const watcher: Watcher = { res, tag, version: -1, chartKey: null };
    watchers.add(watcher);
    res.on('close', () => watchers.delete(watcher));
    const snapshot = await data.snapshot(tag);
    watcher.version = snapshot.version;
    watcher.chartKey = snapshot.chart?.key ?? null;
    event(res, 'snapshot', snapshot);
  }

  // The server watches the ledger cheaply (one PRAGMA per tick) and pushes a fresh snapshot only when it changed.
  let polling = false;
  const poll = setInterval(() => {
    if (polling || watchers.size === 0) return;
    polling = true;
    void pushChanges()
      .catch((err: unknown) => log.warn({ err }, 'dashboard could not read the ledger'))
      .finally(() => (polling = false));
  }, POLL_MS);

  async function pushChanges(): Promise<void> {
    const version = data.currentVersion();
    const byTag = new Map<string | null, Snapshot>();
    for (const w of [...watchers]) {
      if (w.version === version || w.version === -1) continue; // up to date, or its first snapshot is on its way
      if (!byTag.has(w.tag)) byTag.set(w.tag, await data.snapshot(w.tag));
      const snapshot = byTag.get(w.tag)!;
      const sameChart = snapshot.chart !== null && snapshot.chart.key === w.chartKey;
      w.version = version;
      w.chartKey = snapshot.chart?.key ?? null;
      event(w.res, 'snapshot', sameChart ? { ...snapshot, chart: { ...snapshot.chart!, svg: null } } : snapshot);
    }
  }

  const progress = setInterval(() => {
    if (watchers.size === 0) return;
    void data
      .runningWithLog()
      .then((running) => {
        if (!running) return;
        const body = JSON.stringify(running);
        for (const w of watchers) eventRaw(w.res, 'progress', body);
      })
      .catch((err: unknown) => log.warn({ err }, 'dashboard could not read the running experiment'));
  }, PROGRESS_MS);

  const heartbeat = setInterval(() => {
    for (const w of watchers) w.res.write(': still here\n\n');
  }, HEARTBEAT_MS);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      data.close();
      for (const t of [poll, progress, heartbeat]) clearInterval(t);
      if (err.code === 'EADDRINUSE') reject(new Error(`port ${opts.port ?? DEFAULT_PORT} on ${host} is in use: pass --port with another port (0 picks a free one).`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new Error(`cannot listen on ${host}: it is not an address of this machine. Pass --host 127.0.0.1 (the default) or one of this machine's addresses.`));
      else reject(err);
    });
    server.listen(opts.port ?? DEFAULT_PORT, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/${token === null ? '' : `?token=${token}`}`,
    token,
    port,
    close: async () => {
      for (const t of [poll, progress, heartbeat]) clearInterval(t);
      for (const w of watchers) w.res.end();
      watchers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      data.close();
    },
  };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function event(res: ServerResponse, name: string, payload: unknown): void {
  eventRaw(res, name, JSON.stringify(payload));
}

/** JSON has no raw newlines, so one data line carries the whole payload. */
function eventRaw(res: ServerResponse, name: string, json: string): void {
  res.write(`event: ${name}\ndata: ${json}\n\n`);
}

function sameToken(given: string | null, token: string): boolean {
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function loopbackHostHeader(header: string | undefined): boolean {
  if (!header) return false;
  const name = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.replace(/:\d+$/, '');
  return isLoopback(name.toLowerCase());
}
