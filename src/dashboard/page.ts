// The dashboard's page and style: plain HTML and CSS served from strings, nothing fetched from elsewhere.

/** `query` carries the access token to the page's own assets when one is required. */
export function pageHtml(query: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ratchet dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css${query}">
<script src="/app.js${query}" defer></script>
</head>
<body>
<header>
  <h1>ratchet</h1>
  <label>session <select id="session"></select></label>
  <span id="connection" class="muted">connecting…</span>
</header>
<p id="message" hidden></p>
<section id="finished" hidden></section>
<section class="summary" id="summary"></section>
<section class="panel">
  <h2>Progress</h2>
  <img id="chart" alt="the session's metric over its experiments">
</section>
<div class="columns">
  <section class="panel" id="running-panel">
    <h2>Running now</h2>
    <div id="running"><p class="muted">Nothing is running.</p></div>
  </section>
  <section class="panel">
    <h2>Noise, plateau and caps</h2>
    <dl id="status"></dl>
  </section>
</div>
<section class="panel">
  <h2>Experiments <span id="count" class="muted"></span></h2>
  <table id="experiments">
    <thead><tr><th>#</th><th>state</th><th>verdict</th><th>effect [interval]</th><th>metric</th><th>description</th><th>duration</th><th>memory</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<dialog id="detail">
  <form method="dialog"><button class="close" aria-label="close">close</button></form>
  <div id="detail-body"></div>
</dialog>
</body>
</html>
`;
}

export const PAGE_CSS = `
:root { --fg: #1d1d1b; --muted: #6b6b66; --line: #dcdcd6; --bg: #fbfbf9; --kept: #1a7f37; --worse: #b42318; --running: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; }
h1 { font-size: 20px; margin: 0 8px 0 0; }
h2 { font-size: 15px; margin: 0 0 8px; }
.muted { color: var(--muted); }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 12px 0; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.columns .panel { margin: 0; }
.summary { display: flex; gap: 24px; flex-wrap: wrap; margin: 12px 0; }
.summary div { min-width: 120px; }
.summary b { display: block; font-size: 18px; }
#message, #finished { padding: 8px 12px; border-radius: 6px; background: #fff6db; border: 1px solid #ecd58c; }
#finished { background: #eef4ff; border-color: #b5c8ef; }
#chart { max-width: 100%; display: block; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.kept td:first-child { border-left: 3px solid var(--kept); }
tr.added { animation: flash 2s ease-out; }
@keyframes flash { from { background: #fff3b0; } to { background: transparent; } }
.state-running, .verdict-pending { color: var(--running); }
.state-crashed, .state-timed_out, .state-refused, .verdict-worse { color: var(--worse); }
.verdict-improved, .decision-kept { color: var(--kept); font-weight: 600; }
button { font: inherit; cursor: pointer; border: 1px solid var(--line); background: #f4f4f0; border-radius: 4px; padding: 1px 8px; }
.bar { height: 8px; background: #eceae4; border-radius: 4px; overflow: hidden; margin: 6px 0; }
.bar span { display: block; height: 100%; background: var(--running); width: 0; }
pre { background: #f6f6f3; border: 1px solid var(--line); border-radius: 4px; padding: 8px; overflow: auto; max-height: 420px; font: 12px/1.4 ui-monospace, monospace; white-space: pre; }
pre .add { color: var(--kept); }
pre .del { color: var(--worse); }
pre .hunk { color: var(--running); }
dialog { width: min(1000px, 95vw); max-height: 90vh; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; }
dialog .close { float: right; }
#detail-body h2 { margin-top: 16px; }
#detail-body h2:first-child { margin-top: 0; }
@media (max-width: 800px) { .columns { grid-template-columns: 1fr; } }
`;
