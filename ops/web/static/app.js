// mdbroker status page: polls /api/v1/status and renders it. Plain
// JavaScript, no dependencies; charts are drawn by hand on <canvas>.
'use strict';
(function () {
  // Polling interval: 1 s, or ?interval=MS in the page's URL (200 to 10000).
  const POLL_MS = Math.min(10000, Math.max(200, Number(new URLSearchParams(location.search).get('interval')) || 1000));
  const HISTORY = 180;      // Points kept per chart (3 minutes at 1 s).
  const SPAN_S = (HISTORY * POLL_MS) / 1000; // Seconds a chart spans.
  const MAX_ROWS = 500;     // Service rows rendered at most.
  const MAX_WORKERS = 500;  // Worker rows rendered at most.

  const $ = (id) => document.getElementById(id);
  const state = {
    sort: { key: 'name', asc: true },
    filter: '',
    history: new Map(),   // service -> [requests/s]
    traffic: [],          // [{req, rep, drop}]
    rows: new Map(),      // service -> {tr, cells, canvas}
    last: null,
    polls: 0,
    failures: 0,
    endpoints: '',
  };

  // ---- formatting -------------------------------------------------------

  function fmtRate(x) {
    if (x === null || x === undefined) return '–';
    if (x === 0) return '0';
    if (x < 10) return x.toFixed(1);
    if (x < 10000) return Math.round(x).toLocaleString('en-US');
    return (x / 1000).toFixed(1) + 'k';
  }
  function fmtCount(n) {
    if (n < 1e6) return n.toLocaleString('en-US');
    if (n < 1e9) return (n / 1e6).toFixed(2) + 'M';
    return (n / 1e9).toFixed(2) + 'G';
  }
  function fmtDur(s) {
    if (!s) return '–';
    if (s < 1e-3) return Math.round(s * 1e6) + ' µs';
    if (s < 1) return (s * 1e3 < 10 ? (s * 1e3).toFixed(1) : Math.round(s * 1e3)) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    return fmtAge(s);
  }
  function fmtAge(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }
  function spanText(secs) {
    return secs >= 120 ? Math.round(secs / 60) + ' min' : Math.round(secs) + ' s';
  }
  function fmtBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // ---- charts -----------------------------------------------------------

  // sizeCanvas matches the canvas backing store to its CSS size and the
  // device pixel ratio, and returns a context scaled to CSS pixels.
  function sizeCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function drawSpark(c, values) {
    const { ctx, w, h } = sizeCanvas(c);
    const pad = 2;
    ctx.strokeStyle = cssVar('--border');
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, h - pad + 0.5);
    ctx.lineTo(w, h - pad + 0.5);
    ctx.stroke();
    if (values.length < 2) return;
    const max = Math.max(1, ...values);
    const step = w / (HISTORY - 1);
    const x0 = w - (values.length - 1) * step;
    const y = (v) => h - pad - (v / max) * (h - 2 * pad);
    ctx.beginPath();
    ctx.moveTo(x0, h - pad);
    values.forEach((v, i) => ctx.lineTo(x0 + i * step, y(v)));
    ctx.lineTo(w, h - pad);
    ctx.closePath();
    ctx.fillStyle = cssVar('--accent-soft');
    ctx.fill();
    ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x0 + i * step, y(v)) : ctx.moveTo(x0, y(v))));
    ctx.strokeStyle = cssVar('--accent');
    ctx.lineWidth = 1.5;
    ctx.lineJoin = 'round';
    ctx.stroke();
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawTraffic() {
    const c = $('traffic');
    const { ctx, w, h } = sizeCanvas(c);
    const left = 48, right = 12, top = 12, bottom = 22;
    const pw = w - left - right, ph = h - top - bottom;
    const pts = state.traffic;
    const max = niceMax(Math.max(0, ...pts.map((p) => Math.max(p.req, p.rep, p.drop))));
    ctx.font = '11px ' + getComputedStyle(document.body).fontFamily;
    ctx.fillStyle = cssVar('--muted');
    ctx.strokeStyle = cssVar('--border');
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const yy = Math.round(top + ph - (i / 4) * ph) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(w - right, yy);
      ctx.stroke();
      ctx.fillText(fmtRate((max * i) / 4), left - 8, yy);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let i = 0; i <= 3; i++) {
      const secs = SPAN_S - (i * SPAN_S) / 3;
      const label = secs === 0 ? 'now' : '−' + spanText(secs);
      ctx.fillText(label, left + (i / 3) * pw, top + ph + 6);
    }
    if (pts.length < 2) return;
    const step = pw / (HISTORY - 1);
    const x0 = left + pw - (pts.length - 1) * step;
    const line = (key, color) => {
      ctx.beginPath();
      pts.forEach((p, i) => {
        const x = x0 + i * step, yy = top + ph - (p[key] / max) * ph;
        i ? ctx.lineTo(x, yy) : ctx.moveTo(x, yy);
      });
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.75;
      ctx.lineJoin = 'round';
      ctx.stroke();
    };
    line('drop', cssVar('--bad'));
    line('rep', cssVar('--ok'));
    line('req', cssVar('--accent'));
  }

  // ---- services table ---------------------------------------------------

  function model(s) {
    const r = s.rates;
    return {
      name: s.name,
      registered: s.registered,
      workers: s.workers,
      idle: s.idle,
      busy: s.busy,
      queued: s.queued,
      queuedBytes: s.queued_bytes,
      rate: r ? r.requests : null,
      replyRate: r ? r.replies : null,
      dropRate: r ? r.dropped : null,
      p50: s.service_time.p50_seconds,
      p99: s.service_time.p99_seconds,
      requests: s.requests,
      dropped: s.dropped + s.expired,
    };
  }

  function newRow(name) {
    const tr = el('tr');
    tr.dataset.service = name;
    const cells = {};
    const td = (col, cls) => {
      const c = el('td', cls);
      c.dataset.col = col;
      tr.appendChild(c);
      cells[col] = c;
      return c;
    };
    const svc = td('name', 'left svc');
    svc.appendChild(el('span', 'svc-name', name));
    const w = td('workers');
    const wrap = el('span', 'workers-cell');
    const bar = el('span', 'bar');
    bar.append(el('span', 'busy'), el('span', 'idle'));
    const count = el('span', 'wcount');
    count.append(el('b', 'n'), document.createTextNode(' '), el('span', 'sub'));
    wrap.append(bar, count);
    w.appendChild(wrap);
    for (const col of ['queued', 'rate', 'replyRate', 'dropRate', 'p50', 'p99', 'requests']) td(col);
    const chart = td('chart', 'left chart-col');
    const canvas = el('canvas', 'spark');
    chart.appendChild(canvas);
    return { tr, cells, canvas, bar, count };
  }

  function setCell(c, text, cls) {
    if (c.textContent !== text) c.textContent = text;
    c.className = cls || '';
  }

  function updateRow(row, m) {
    const c = row.cells;
    row.tr.classList.toggle('ghost', !m.registered);
    const svc = c.name;
    let badge = svc.querySelector('.badge');
    if (m.workers === 0) {
      if (!badge) { badge = el('span', 'badge none'); svc.appendChild(badge); }
      badge.textContent = m.registered ? 'no workers' : 'never served';
    } else if (badge) {
      badge.remove();
    }
    const total = Math.max(1, m.workers);
    row.bar.children[0].style.width = (100 * m.busy) / total + '%';
    row.bar.children[1].style.width = (100 * m.idle) / total + '%';
    row.count.querySelector('.n').textContent = m.workers;
    row.count.querySelector('.sub').textContent = m.workers === 0 ? '' : m.busy > 0 ? m.busy + ' busy' : 'idle';
    row.tr.title = m.workers + ' workers: ' + m.idle + ' idle, ' + m.busy + ' busy';
    setCell(c.queued, fmtCount(m.queued), m.queued > 0 ? (m.workers === 0 ? 'bad' : 'hot') : 'zero');
    c.queued.title = m.queued > 0 ? fmtBytes(m.queuedBytes) + ' queued' : '';
    setCell(c.rate, fmtRate(m.rate), m.rate ? '' : 'zero');
    setCell(c.replyRate, fmtRate(m.replyRate), m.replyRate ? '' : 'zero');
    setCell(c.dropRate, fmtRate(m.dropRate), m.dropRate ? 'bad' : 'zero');
    setCell(c.p50, fmtDur(m.p50), m.p50 ? '' : 'zero');
    setCell(c.p99, fmtDur(m.p99), m.p99 ? '' : 'zero');
    setCell(c.requests, fmtCount(m.requests), m.requests ? '' : 'zero');
    c.requests.title = m.dropped ? fmtCount(m.dropped) + ' dropped or expired' : '';
    drawSpark(row.canvas, state.history.get(m.name) || []);
  }

  function compare(a, b) {
    const { key, asc } = state.sort;
    let d;
    if (key === 'name') d = a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    else d = (a[key] || 0) - (b[key] || 0) || (a.name < b.name ? -1 : 1) * (asc ? 1 : -1);
    return asc ? d : -d;
  }

  function renderServices(st) {
    const tbody = $('services').tBodies[0];
    const all = st.services.map(model);
    const f = state.filter.toLowerCase();
    const shown = all.filter((m) => !f || m.name.toLowerCase().includes(f)).sort(compare);
    const visible = shown.slice(0, MAX_ROWS);
    const keep = new Set(visible.map((m) => m.name));
    for (const [name, row] of state.rows) {
      if (!keep.has(name)) { row.tr.remove(); state.rows.delete(name); }
    }
    let prev = null;
    for (const m of visible) {
      let row = state.rows.get(m.name);
      if (!row) { row = newRow(m.name); state.rows.set(m.name, row); }
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (row.tr !== want) tbody.insertBefore(row.tr, want);
      updateRow(row, m);
      prev = row.tr;
    }
    $('svc-count').textContent = all.length ? '(' + all.length + ')' : '';
    $('svc-empty').hidden = all.length > 0;
    const more = $('svc-more');
    more.hidden = shown.length <= MAX_ROWS;
    more.textContent = 'Showing ' + MAX_ROWS + ' of ' + shown.length + ' services; filter to narrow down.';
  }

  // ---- workers table, reasons -------------------------------------------

  function renderWorkers(st) {
    const tbody = $('workers').tBodies[0];
    const frag = document.createDocumentFragment();
    for (const w of st.workers.slice(0, MAX_WORKERS)) {
      const tr = el('tr');
      tr.dataset.worker = w.identity;
      tr.append(
        el('td', 'left mono', w.identity),
        el('td', 'left', w.service),
        (() => { const td = el('td', 'left'); td.appendChild(el('span', 'badge v', w.protocol)); return td; })(),
        (() => { const td = el('td', 'left'); td.appendChild(el('span', 'badge ' + (w.busy ? 'busy' : 'idle'), w.busy ? 'busy' : 'idle')); return td; })(),
        el('td', '', fmtAge(w.age_seconds)),
        el('td', w.last_seen_seconds > 10 ? 'hot' : '', fmtDur(w.last_seen_seconds) + ' ago'),
        el('td', w.served ? '' : 'zero', fmtCount(w.served)),
      );
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    $('wrk-count').textContent = st.workers.length ? '(' + st.workers.length + ')' : '';
    $('wrk-empty').hidden = st.workers.length > 0;
    const more = $('wrk-more');
    more.hidden = st.workers.length <= MAX_WORKERS;
    more.textContent = 'Showing ' + MAX_WORKERS + ' of ' + st.workers.length + ' workers.';
  }

  function renderReasons(id, counts) {
    const dl = $(id);
    const frag = document.createDocumentFragment();
    const entries = Object.entries(counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    if (!entries.length) frag.appendChild(el('dt', 'none', 'none'));
    for (const [reason, n] of entries) {
      const dt = el('dt', '', reason.replace(/_/g, ' '));
      dt.dataset.reason = reason;
      frag.append(dt, el('dd', '', fmtCount(n)));
    }
    dl.replaceChildren(frag);
  }

  // ---- fronts ------------------------------------------------------------

  function renderFronts(st) {
    const fronts = (st.security && st.security.fronts) || [];
    const frag = document.createDocumentFragment();
    for (const f of fronts) {
      const c = f.connections;
      const tr = el('tr');
      tr.dataset.front = f.front;
      const eps = el('td', 'left');
      for (const e of f.endpoints) {
        eps.appendChild(el('span', 'chip' + (e.plaintext ? ' plain' : ''), e.endpoint + ' · ' + e.mechanism));
      }
      const refused = Object.values(f.refused || {}).reduce((a, n) => a + n, 0);
      const cell = (col, n, hot) => {
        const td = el('td', n === undefined ? 'zero' : (hot && n > 0 ? 'hot' : (n ? '' : 'zero')), n === undefined ? '–' : fmtCount(n));
        td.dataset.col = col;
        return td;
      };
      tr.append(
        el('td', 'left mono', f.front),
        eps,
        cell('open', c && c.open),
        cell('accepted', c && c.accepted),
        cell('handshake_failed', c && c.handshake_failed, true),
        cell('refused', f.front === 'http' ? undefined : refused, true),
        cell('protocol_errors', c && c.protocol_errors + c.too_large, true),
      );
      frag.appendChild(tr);
    }
    $('fronts').tBodies[0].replaceChildren(frag);
  }

  // ---- top of page --------------------------------------------------------

  function renderHeader(st) {
    const eps = st.endpoints.join(' ');
    if (eps !== state.endpoints) {
      state.endpoints = eps;
      $('endpoints').replaceChildren(...st.endpoints.map((e) => el('span', 'chip', e)));
    }
    $('uptime').textContent = st.running ? fmtAge(st.uptime_seconds) : '–';
    const t = st.totals, r = st.rates;
    $('k-req').textContent = fmtRate(r && r.requests);
    $('k-req-total').textContent = fmtCount(t.requests) + ' total';
    $('k-rep').textContent = fmtRate(r && r.replies);
    $('k-rep-total').textContent = fmtCount(t.replies) + ' total';
    $('k-drop').textContent = fmtRate(r && r.dropped);
    $('k-drop').classList.toggle('bad', !!(r && r.dropped > 0));
    $('k-drop-total').textContent = fmtCount(t.dropped) + ' total';
    $('k-workers').textContent = fmtCount(t.workers);
    $('k-workers-sub').textContent = t.idle_workers + ' idle · ' + t.busy_workers + ' busy';
    $('k-services').textContent = fmtCount(t.services);
    const orphans = st.services.filter((s) => s.workers === 0).length;
    $('k-services-sub').textContent = orphans ? orphans + ' without workers' : 'all served';
    $('k-queued').textContent = fmtCount(t.queued);
    $('k-queued-sub').textContent = fmtBytes(t.queued_bytes);
  }

  function setConn(kind, text) {
    const c = $('conn');
    c.className = 'conn conn-' + kind;
    c.textContent = text;
  }

  function banner(text, warn) {
    const b = $('banner');
    b.hidden = !text;
    b.textContent = text || '';
    b.classList.toggle('warn', !!warn);
  }

  // ---- polling ----------------------------------------------------------

  function record(st) {
    if (!st.rates) return;
    const present = new Set();
    for (const s of st.services) {
      present.add(s.name);
      let h = state.history.get(s.name);
      if (!h) { h = []; state.history.set(s.name, h); }
      h.push(s.rates ? s.rates.requests : 0);
      if (h.length > HISTORY) h.shift();
    }
    for (const name of state.history.keys()) if (!present.has(name)) state.history.delete(name);
    state.traffic.push({ req: st.rates.requests, rep: st.rates.replies, drop: st.rates.dropped });
    if (state.traffic.length > HISTORY) state.traffic.shift();
  }

  function render(st) {
    state.last = st;
    renderHeader(st);
    renderServices(st);
    renderWorkers(st);
    renderReasons('drops', st.dropped);
    renderReasons('removed', st.removed);
    renderFronts(st);
    drawTraffic();
    if (!st.running) { setConn('down', 'stopped'); banner('The broker is not running.'); }
    else if (st.draining) { setConn('drain', 'draining'); banner('Draining: no new requests are dispatched; in-flight requests are finishing before shutdown.', true); }
    else { setConn('live', 'live'); banner(''); }
    const now = new Date(st.now);
    $('updated').textContent = 'Updated ' + now.toLocaleTimeString('en-GB') + ' · every ' + POLL_MS / 1000 + ' s';
    document.body.dataset.updated = st.now;
    document.body.dataset.polls = String(++state.polls);
  }

  async function poll() {
    try {
      const res = await fetch('/api/v1/status', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const st = await res.json();
      state.failures = 0;
      record(st);
      render(st);
    } catch (err) {
      state.failures++;
      setConn('down', 'offline');
      banner('Cannot reach the broker (' + err.message + '); retrying. Figures below are from ' +
        (state.last ? new Date(state.last.now).toLocaleTimeString('en-GB') : 'nowhere yet') + '.');
    } finally {
      setTimeout(poll, state.failures ? Math.min(10000, POLL_MS * 2 ** state.failures) : POLL_MS);
    }
  }

  // ---- interaction ------------------------------------------------------

  function initSort() {
    for (const th of $('services').tHead.querySelectorAll('th[data-sort]')) {
      th.addEventListener('click', () => {
        const key = th.dataset.sort;
        if (state.sort.key === key) state.sort.asc = !state.sort.asc;
        else state.sort = { key, asc: key === 'name' };
        markSort();
        if (state.last) renderServices(state.last);
      });
    }
    markSort();
  }

  function markSort() {
    for (const th of $('services').tHead.querySelectorAll('th[data-sort]')) {
      th.classList.toggle('sorted', th.dataset.sort === state.sort.key);
      th.classList.toggle('asc', th.dataset.sort === state.sort.key && state.sort.asc);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.querySelector('th.chart-col').textContent = 'Requests/s, last ' + spanText(SPAN_S);
    initSort();
    $('filter').addEventListener('input', (e) => {
      state.filter = e.target.value.trim();
      if (state.last) renderServices(state.last);
    });
    window.addEventListener('resize', () => { if (state.last) { drawTraffic(); renderServices(state.last); } });
    drawTraffic();
    poll();
  });
})();
