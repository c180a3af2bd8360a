// The dashboard's browser script, plain JavaScript served as a string: it follows the server's events and renders them with textContent only.
// Agent-written text (descriptions, diffs, logs) never goes through innerHTML, so it cannot run in the page.

export const CLIENT_JS = String.raw`'use strict';
(function () {
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var tag = params.get('tag');
  var source = null;
  var seen = null;
  var chartSvg = null;
  var running = null;

  function $(id) { return document.getElementById(id); }

  function withToken(path, extra) {
    var q = new URLSearchParams(extra || {});
    if (token) q.set('token', token);
    var s = q.toString();
    return s ? path + '?' + s : path;
  }

  function el(name, className, text) {
    var node = document.createElement(name);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(n) {
    if (n === null || n === undefined) return '-';
    if (typeof n !== 'number') return String(n);
    return Math.abs(n) >= 1000 ? n.toFixed(1) : String(Number(n.toPrecision(6)));
  }

  function interval(i) { return i ? ' [' + fmt(i[0]) + ', ' + fmt(i[1]) + ']' : ''; }

  function setConnection(text) { $('connection').textContent = text; }

  function connect() {
    if (source) source.close();
    var q = {};
    if (tag) q.tag = tag;
    source = new EventSource(withToken('/api/events', q));
    source.addEventListener('snapshot', function (e) { render(JSON.parse(e.data)); setConnection('live'); });
    source.addEventListener('progress', function (e) { renderRunning(JSON.parse(e.data)); });
    source.onerror = function () { setConnection('reconnecting…'); };
  }

  function render(s) {
    renderSessions(s);
    var message = $('message');
    message.hidden = !s.message;
    message.textContent = s.message || '';
    renderFinished(s);
    renderSummary(s);
    renderChart(s);
    renderStatus(s);
    if (!s.active || !s.running) renderRunning(null);
    else if (!running || running.id !== s.running.id || running.runId !== s.running.runId) renderRunning(s.running);
    renderTable(s);
    document.body.dataset.version = String(s.version);
  }

  function renderSessions(s) {
    var select = $('session');
    select.replaceChildren();
    if (!s.sessions.length) select.append(el('option', '', 'no session yet'));
    s.sessions.forEach(function (x) {
      var option = el('option', '', x.tag + (x.active ? ' (active)' : ''));
      option.value = x.tag;
      option.selected = x.tag === s.tag;
      select.append(option);
    });
  }

  function renderFinished(s) {
    var box = $('finished');
    var f = s.status && s.status.finished;
    box.hidden = !f;
    box.textContent = f ? 'This session is finished: ' + f.reason + (f.at ? ' (' + new Date(f.at).toLocaleString() + ')' : '') : '';
  }

  function renderSummary(s) {
    var box = $('summary');
    box.replaceChildren();
    if (!s.session) return;
    var kept = s.experiments.filter(function (e) { return e.decision === 'kept'; }).length;
    var items = [
      [s.session.metricName, s.session.direction === 'minimize' ? 'lower is better' : 'higher is better'],
      ['baseline', fmt(s.session.baselineMetric)],
      ['best', fmt(s.session.bestMetric) + (s.session.bestExperimentId !== null ? ' (#' + s.session.bestExperimentId + ')' : '')],
      ['experiments', String(s.totalExperiments)],
      ['kept', String(kept)],
    ];
    if (s.status) items.push(['runs spent', String(s.status.runsSpent)]);
    items.forEach(function (item) {
      var div = el('div');
      div.append(el('span', 'muted', item[0]), el('b', '', item[1]));
      box.append(div);
    });
  }

  function renderChart(s) {
    var img = $('chart');
    if (!s.chart) { img.hidden = true; return; }
    img.hidden = false;
    // null: the server knows this page holds the current chart already.
    if (s.chart.svg === null || s.chart.svg === chartSvg) return;
    chartSvg = s.chart.svg;
    img.dataset.placeholder = s.chart.note ? 'true' : 'false';
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(s.chart.svg);
  }

  var CAP_NAMES = { experiments: 'experiments', runs: 'runs', deadline: 'time', consecutiveCrashes: 'crashes in a row', cost: 'cost' };

  function duration(seconds) {
    var s = Math.round(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function capText(key, v) {
    var time = key === 'deadline';
    var text = (time ? duration(v.used) : fmt(v.used)) + ' of ' + (time ? duration(v.limit) : fmt(v.limit)) + (v.unit ? ' ' + v.unit : '');
    if (time && v.at) text += ' (ends ' + new Date(v.at).toLocaleString() + ')';
    return text + (v.reached ? ', reached' : '');
  }

  function renderStatus(s) {
    var dl = $('status');
    dl.replaceChildren();
    function row(term, value) { if (value === null || value === undefined || value === '') return; dl.append(el('dt', '', term), el('dd', '', value)); }
    var n = s.noise;
    if (n) {
      row('noise sd', n.sd === null ? 'not measured: ' + n.samples + ' calibration run(s), it takes 2 or more' : fmt(n.sd) + ' over ' + n.samples + ' calibration runs');
      row('pooled sd', fmt(n.pooledSd));
      row('smallest detectable', fmt(n.minDetectableEffect));
    } else if (s.session) row('noise', 'not measured yet');
    var st = s.status;
    if (!st) { if (s.session && !s.active) row('session', 'not active: status speaks of the active session'); return; }
    if (st.plateau) row('plateau', st.plateau.reached ? st.plateau.message : st.plateau.experimentsSinceKeep + ' of ' + st.plateau.window + ' experiments since the last keep');
    if (st.limits && typeof st.limits === 'object') {
      // A cap whose limit is null is not set; only the caps in force are shown.
      var caps = Object.keys(st.limits).filter(function (k) { var v = st.limits[k]; return v && typeof v === 'object' && v.limit !== null && v.limit !== undefined; });
      if (!caps.length) row('caps', 'none set (limits in ratchet.json)');
      caps.forEach(function (k) { row((CAP_NAMES[k] || k) + ' cap', capText(k, st.limits[k])); });
    }
    if (!st.config.valid) row('ratchet.json', st.config.error);
    if (!st.integrity.ok) row('integrity', st.integrity.findings.join('; '));
    row('sandbox', st.sandbox.kind === 'none' ? 'none: ' + st.sandbox.why : st.sandbox.kind);
    row('next', st.next);
  }

  function renderRunning(r) {
    var box = $('running');
    running = r;
    box.replaceChildren();
    if (!r) { box.append(el('p', 'muted', 'Nothing is running.')); return; }
    box.append(el('p', '', '#' + r.id + (r.runId !== r.id ? ' (run #' + r.runId + ')' : '') + ' ' + r.description));
    box.append(el('p', 'muted', r.phase + ': ' + r.elapsedSeconds + ' s of ' + r.budgetSeconds + ' s'));
    var bar = el('div', 'bar');
    var fill = el('span');
    fill.style.width = Math.min(100, (100 * r.elapsedSeconds) / Math.max(1, r.budgetSeconds)) + '%';
    bar.append(fill);
    box.append(bar);
    if (r.logTail && r.logTail.length) box.append(el('pre', 'log', r.logTail.join('\n')));
  }

  function renderTable(s) {
    var body = document.querySelector('#experiments tbody');
    var first = seen === null;
    var next = new Set();
    body.replaceChildren();
    s.experiments.forEach(function (e) {
      next.add(e.id);
      var tr = el('tr', (e.decision === 'kept' ? 'kept' : '') + (!first && !seen.has(e.id) ? ' added' : ''));
      tr.dataset.id = String(e.id);
      tr.append(el('td', 'num', e.id));
      tr.append(el('td', 'state-' + e.state, e.state + (e.decision ? ', ' + e.decision + (e.forced ? ' (forced)' : '') : '')));
      tr.append(el('td', e.verdict ? 'verdict-' + e.verdict : '', e.verdict || (e.kind === 'baseline' ? 'baseline' : '-')));
      tr.append(el('td', 'num', e.effect === null ? '-' : fmt(e.effect) + interval(e.interval)));
      tr.append(el('td', 'num', fmt(e.metric) + (e.runs > 1 ? ' (' + e.runs + ' runs)' : '')));
      var description = el('td', '', e.description);
      if (e.reason) description.title = e.reason;
      tr.append(description);
      tr.append(el('td', 'num', e.durationSeconds === null ? '-' : e.durationSeconds + ' s'));
      tr.append(el('td', 'num', e.peakMemoryMb === null ? '-' : e.peakMemoryMb + ' MB'));
      var cell = el('td');
      var button = el('button', 'show', 'diff');
      button.type = 'button';
      button.addEventListener('click', function () { openDetail(e.id); });
      cell.append(button);
      tr.append(cell);
      body.append(tr);
    });
    seen = next;
    $('count').textContent = s.totalExperiments > s.experiments.length ? '(newest ' + s.experiments.length + ' of ' + s.totalExperiments + ')' : '';
  }

  function openDetail(id) {
    var dialog = $('detail');
    var body = $('detail-body');
    body.replaceChildren(el('p', 'muted', 'Loading #' + id + '…'));
    if (!dialog.open) dialog.showModal();
    fetch(withToken('/api/experiments/' + id))
      .then(function (r) { return r.ok ? r.json() : r.text().then(function (t) { throw new Error(t); }); })
      .then(function (d) { renderDetail(body, d); })
      .catch(function (err) { body.replaceChildren(el('p', 'verdict-worse', 'Could not load experiment ' + id + ': ' + err.message)); });
  }

  function renderDetail(body, d) {
    var e = d.experiment;
    body.replaceChildren();
    body.dataset.id = String(e.id);
    body.append(el('h2', '', '#' + e.id + ' ' + e.description));
    var dl = el('dl');
    function row(term, value) { if (value === null || value === undefined || value === '') return; dl.append(el('dt', '', term), el('dd', '', value)); }
    row('session', d.tag);
    row('hypothesis', e.hypothesis);
    row('state', e.state + (e.decision ? ', ' + e.decision : '') + (e.reason ? ': ' + e.reason : ''));
    row(d.metricName, fmt(e.metric) + ' (' + d.direction + ')');
    if (d.verdict) row('verdict', d.verdict.verdict + ', effect ' + fmt(d.verdict.effect) + interval(d.interval) + ', ' + d.verdict.runsSpent + ' run(s)');
    var samples = d.samples.filter(function (x) { return x.name === d.metricName; });
    if (samples.length) row('samples', samples.map(function (x) { return '#' + x.run + ' ' + x.side + ' ' + fmt(x.value); }).join(', '));
    row('duration', e.durationSeconds === null ? null : e.durationSeconds + ' s');
    row('peak memory', e.peakMemoryMb === null ? null : e.peakMemoryMb + ' MB' + (e.memoryMethod ? ' (' + e.memoryMethod + ')' : ''));
    row('commit', e.commit ? e.commit.slice(0, 12) + ' on ' + e.parentCommit.slice(0, 12) : null);
    body.append(dl);
    body.append(el('h2', '', 'Diff'));
    if (d.diffNote) body.append(el('p', 'muted', d.diffNote));
    if (d.diff) {
      var pre = el('pre', 'diff');
      d.diff.split('\n').forEach(function (line) {
        var c = line.charAt(0);
        var cls = line.indexOf('@@') === 0 ? 'hunk' : c === '+' && line.indexOf('+++') !== 0 ? 'add' : c === '-' && line.indexOf('---') !== 0 ? 'del' : '';
        pre.append(el('span', cls, line + '\n'));
      });
      body.append(pre);
    }
    body.append(el('h2', '', 'Log'));
    body.append(el('pre', 'log', d.logTail || '(empty)'));
    if (d.evaluateLogTail !== null) {
      body.append(el('h2', '', 'Evaluate log'));
      body.append(el('pre', 'log', d.evaluateLogTail || '(empty)'));
    }
  }

  $('session').addEventListener('change', function (e) {
    tag = e.target.value;
    var q = new URLSearchParams(location.search);
    q.set('tag', tag);
    history.replaceState(null, '', '?' + q.toString());
    seen = null;
    connect();
  });

  connect();
})();
`;
