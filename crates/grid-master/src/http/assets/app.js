// The dashboard: a single-page app over /api/v1 with hash routes
// (#/, #/jobs, #/jobs/ID, #/submit, #/nodes, #/nodes/NAME, #/tenants, #/me).
// Text from the grid goes into the page only as text (textContent, text
// nodes, attributes), never as markup.
'use strict';

(() => {
  const { fmt } = GridCharts;

  // ---- DOM helpers ----------------------------------------------------

  // An element with attributes and children; strings become text nodes.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'test') el.dataset.test = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    put(el, kids);
    return el;
  }

  function put(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k == null || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
    return el;
  }

  function fill(el, ...kids) {
    el.replaceChildren();
    return put(el, kids);
  }

  const link = (href, text, attrs) => h('a', { href, ...attrs }, text);
  const jobHref = (id) => `#/jobs/${encodeURIComponent(id)}`;
  const nodeHref = (name) => `#/nodes/${encodeURIComponent(name)}`;

  function toast(message, bad) {
    const el = h('div', { class: bad ? 'toast bad' : 'toast', role: 'status', test: 'toast' }, message);
    document.body.append(el);
    setTimeout(() => el.remove(), 5000);
  }

  // ---- The API ----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // Calls the API with the login cookie; a change carries the header that
  // proves it comes from this page. A 401 sends the user to the login view.
  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') init.headers['X-Grid-Csrf'] = '1';
    if (body instanceof Blob) {
      init.body = body;
      init.headers['Content-Type'] = 'application/wasm';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'the master cannot be reached');
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const message = (data && data.error) || `${res.status} ${res.statusText}`;
      if (res.status === 401 && path !== '/api/v1/login') showLogin(message);
      throw new ApiError(res.status, message);
    }
    return data;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  // ---- Live updates ----------------------------------------------------

  // One stream of job and node changes for the whole page. Pages listen
  // with `live.on`; when the stream fails they get a `poll` tick every two
  // seconds instead, and re-read what they show.
  const live = {
    listeners: new Set(),
    source: null,
    timer: null,
    failures: 0,
    on(fn) {
      this.listeners.add(fn);
      return () => this.listeners.delete(fn);
    },
    emit(event) {
      for (const fn of [...this.listeners]) {
        try {
          fn(event);
        } catch (e) {
          console.error(e);
        }
      }
    },
    start() {
      this.stop();
      this.open();
    },
    open() {
      const source = new EventSource('/api/v1/events');
      this.source = source;
      const handle = (e) => {
        let event;
        try {
          event = JSON.parse(e.data);
        } catch (err) {
          return;
        }
        this.emit(event);
      };
      for (const name of ['message', 'job', 'node', 'reset']) source.addEventListener(name, handle);
      source.onopen = () => {
        this.failures = 0;
        this.show('on', 'live updates');
        if (this.timer) {
          clearInterval(this.timer);
          this.timer = null;
          this.emit({ kind: 'reset' });
        }
      };
      source.onerror = () => {
        this.failures++;
        if (source.readyState === EventSource.CLOSED || this.failures >= 3) {
          source.close();
          if (this.source === source) this.source = null;
          this.poll();
        }
      };
    },
    // Polls every two seconds, and tries the stream again now and then.
    poll() {
      this.show('poll', 'refreshing every 2 s');
      if (this.timer) return;
      let ticks = 0;
      this.timer = setInterval(() => {
        this.emit({ kind: 'poll' });
        if (++ticks % 15 === 0 && !this.source) this.open();
      }, 2000);
    },
    stop() {
      if (this.source) this.source.close();
      this.source = null;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.show('', 'offline');
    },
    show(cls, title) {
      const dot = document.getElementById('live');
      dot.className = `live ${cls}`;
      dot.title = title;
      dot.dataset.mode = cls || 'off';
    },
  };

  // ---- Session and routing ---------------------------------------------

  let me = null; // whoami: {kind, tenant, node}
  let page = null; // the current page's clean-up list

  const NAV = {
    admin: [['#/', 'Overview'], ['#/jobs', 'Jobs'], ['#/submit', 'Submit'], ['#/nodes', 'Nodes'], ['#/tenants', 'Tenants']],
    tenant: [['#/jobs', 'Jobs'], ['#/submit', 'Submit'], ['#/nodes', 'Nodes']],
    node: [['#/me', 'My node'], ['#/jobs', 'Jobs']],
  };

  const ROUTES = [
    [/^#?\/?$/, overviewPage],
    [/^#\/jobs$/, jobsPage],
    [/^#\/jobs\/([^/]+)$/, jobPage],
    [/^#\/submit$/, submitPage],
    [/^#\/nodes$/, nodesPage],
    [/^#\/nodes\/([^/]+)$/, nodePage],
    [/^#\/tenants$/, tenantsPage],
    [/^#\/me$/, mePage],
  ];

  function home() {
    return me.kind === 'admin' ? '#/' : me.kind === 'node' ? '#/me' : '#/jobs';
  }

  function leave() {
    if (page) for (const fn of page) fn();
    page = null;
  }

  // A page's context: what it registers is undone when the user leaves.
  function context() {
    const undo = [];
    page = undo;
    const ctx = {
      alive: true,
      on(fn) {
        undo.push(live.on(fn));
      },
      every(ms, fn) {
        const t = setInterval(fn, ms);
        undo.push(() => clearInterval(t));
      },
      defer(fn) {
        undo.push(fn);
      },
    };
    undo.push(() => {
      ctx.alive = false;
    });
    return ctx;
  }

  function route() {
    if (!me) return;
    leave();
    let hash = location.hash || '#/';
    if (hash === '#/' && me.kind !== 'admin') {
      location.replace(home());
      return;
    }
    const main = document.getElementById('main');
    main.replaceChildren();
    for (const a of document.querySelectorAll('#nav a')) {
      const target = a.getAttribute('href');
      a.classList.toggle('on', target === '#/' ? hash === '#/' : hash.startsWith(target));
    }
    for (const [re, render] of ROUTES) {
      const m = hash.match(re);
      if (m) {
        const args = m.slice(1).map(decodeURIComponent);
        render(main, context(), ...args).catch((e) => showError(main, e));
        return;
      }
    }
    fill(main, h('div', { class: 'card empty' }, 'No such page. ', link(home(), 'Go home')));
  }

  function showError(main, e) {
    if (e instanceof ApiError && e.status === 401) return;
    const message = e instanceof ApiError ? e.message : String(e);
    fill(main, h('div', { class: 'notice bad', test: 'page-error' }, message));
  }

  function showLogin(message) {
    me = null;
    leave();
    live.stop();
    document.getElementById('bar').hidden = true;
    document.getElementById('main').hidden = true;
    document.getElementById('main').replaceChildren();
    document.getElementById('login').hidden = false;
    const err = document.getElementById('login-error');
    err.textContent = message || '';
    err.hidden = !message;
    document.getElementById('token').focus();
  }

  async function enter(fresh) {
    me = await api('GET', '/api/v1/whoami');
    document.getElementById('login').hidden = true;
    document.getElementById('bar').hidden = false;
    document.getElementById('main').hidden = false;
    const who = me.kind === 'admin' ? 'admin' : me.kind === 'tenant' ? `tenant ${me.tenant}` : `node ${me.node}`;
    document.getElementById('who').textContent = who;
    fill(document.getElementById('nav'), (NAV[me.kind] || NAV.tenant).map(([href, text]) => link(href, text)));
    live.start();
    // A new login starts at its home page; a reload stays where it was.
    if (fresh && location.hash !== home()) location.hash = home();
    else route();
  }

  async function login(token) {
    await api('POST', '/api/v1/login', { token });
    await enter(true);
  }

  async function boot() {
    document.getElementById('login-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = document.getElementById('token');
      const button = e.target.querySelector('button');
      button.disabled = true;
      try {
        await login(input.value.trim());
        input.value = '';
      } catch (err) {
        showLogin(err.message);
      } finally {
        button.disabled = false;
      }
    });
    document.getElementById('logout').addEventListener('click', async () => {
      try {
        await api('POST', '/api/v1/logout');
      } finally {
        showLogin('');
      }
    });
    window.addEventListener('hashchange', route);

    // A login link (#token=...) logs in, then the token leaves the URL
    // and the history at once. Over a session already open it asks first:
    // someone else's link would otherwise put the next submission in
    // their tenant, unseen.
    const m = location.hash.match(/^#token=([^&]*)/);
    if (m) {
      history.replaceState(null, '', `${location.pathname}${location.search}#/`);
      const current = await api('GET', '/api/v1/whoami').catch(() => null);
      if (current) {
        const who = current.tenant ? `tenant ${current.tenant}` : current.node ? `node ${current.node}` : current.kind;
        if (!window.confirm(`This link logs in with another token, ending your session as ${who}. Log in with it?`)) {
          await enter(false).catch((err) => showLogin(err.message));
          return;
        }
      }
      try {
        await login(decodeURIComponent(m[1]));
      } catch (err) {
        showLogin(err.message);
      }
      return;
    }
    try {
      await enter(false);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) showLogin(err.message);
    }
  }

  // ---- Shared pieces ---------------------------------------------------

  const ICONS = { queued: '⏳', running: '🔄', succeeded: '✅', failed: '❌', cancelled: '🚫' };

  function stateBadge(state) {
    const icon = h('span', { class: state === 'running' ? 'spin' : '', 'aria-hidden': 'true' }, ICONS[state] || '•');
    return h('span', { class: `state ${state}`, test: 'job-state' }, icon, state);
  }

  function head(title, sub, ...actions) {
    return h(
      'div',
      { class: 'head' },
      h('div', {}, h('h1', {}, title), sub ? h('p', { class: 'sub' }, sub) : null),
      actions.length ? h('div', { class: 'actions' }, actions) : null,
    );
  }

  function stat(label, value, test) {
    return h('div', { class: 'stat', test }, h('div', { class: 'k' }, label), h('div', { class: 'v' }, value));
  }

  function chartCard(title, chart) {
    return h('div', { class: 'card' }, h('h2', {}, title), chart);
  }

  function kv(pairs) {
    const dl = h('dl', { class: 'kv' });
    for (const [k, v, test] of pairs) {
      if (v == null || v === '') continue;
      dl.append(h('dt', {}, k), h('dd', { test }, v));
    }
    return dl;
  }

  function wall(job) {
    if (job.wall_ms != null) return job.wall_ms;
    if (job.state === 'running' && job.started_at_ms) return Date.now() - job.started_at_ms;
    return null;
  }

  function short(hash) {
    return hash && hash.length > 16 ? `${hash.slice(0, 12)}…` : hash || '';
  }

  // A table of jobs; `columns` picks which of the known columns show.
  const JOB_COLUMNS = {
    state: ['State', (j) => stateBadge(j.state)],
    id: ['Job', (j) => link(jobHref(j.id), j.id, { class: 'mono', test: 'job-link' })],
    tenant: ['Tenant', (j) => j.tenant || '—'],
    module: ['Module', (j) => h('span', { class: 'mono', title: j.module || '' }, short(j.module))],
    node: ['Node', (j) => (j.node ? link(nodeHref(j.node), j.node) : '—')],
    fuel: ['Fuel', (j) => fmt.num(j.fuel_used), 'num'],
    wall: ['Wall time', (j) => fmt.span(wall(j)), 'num'],
    reason: ['Reason', (j) => h('span', { title: j.reason || j.waiting || '' }, j.reason || j.waiting || ''), 'cut'],
    submitted: ['Submitted', (j) => h('span', { title: fmt.time(j.submitted_at_ms) }, fmt.ago(j.submitted_at_ms))],
  };

  function jobRow(job, columns) {
    const tr = h('tr', { test: 'job-row', 'data-job': job.id, 'data-state': job.state });
    for (const c of columns) {
      const [, cell, cls] = JOB_COLUMNS[c];
      tr.append(h('td', { class: cls || null }, cell(job)));
    }
    return tr;
  }

  function jobTable(jobs, columns, emptyText) {
    if (!jobs.length) return h('div', { class: 'empty', test: 'jobs-empty' }, emptyText || 'No jobs.');
    return h(
      'table',
      { test: 'job-table' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: JOB_COLUMNS[c][2] === 'num' ? 'num' : null }, JOB_COLUMNS[c][0])))),
      h('tbody', {}, jobs.map((j) => jobRow(j, columns))),
    );
  }

  function byNewest(a, b) {
    return (b.submitted_at_ms || 0) - (a.submitted_at_ms || 0) || String(b.id).localeCompare(String(a.id));
  }

  // ---- Overview ---------------------------------------------------------

  async function overviewPage(main, ctx) {
    const stats = h('div', { class: 'stats' });
    const charts = h('div', { class: 'grid' });
    const fuel = h('div', {});
    fill(main, head('Overview', 'The grid over the last minutes'), stats, charts, h('div', { class: 'card' }, h('h2', {}, 'Fuel burned per node'), fuel));
    const load = async () => {
      const [s, n] = await Promise.all([api('GET', '/api/v1/stats'), api('GET', '/api/v1/nodes')]);
      if (!ctx.alive) return;
      const series = s.series || [];
      const last = series[series.length - 1] || {};
      const perSec = GridCharts.rate(series.map((p) => [p.at_ms, p.finished]));
      const ready = (n.nodes || []).filter((x) => x.state === 'ready').length;
      fill(
        stats,
        stat('Running', fmt.num(last.running ?? 0), 'stat-running'),
        stat('Queued', fmt.num(last.queued ?? 0), 'stat-queued'),
        stat('Jobs / s', fmt.num(perSec.length ? perSec[perSec.length - 1][1] : 0)),
        stat('Finished', fmt.num(last.finished ?? 0)),
        stat('Nodes ready', `${ready} / ${(n.nodes || []).length}`, 'stat-nodes'),
        stat('Fuel burned', fmt.num(last.fuel ?? (s.fuel_by_node || []).reduce((sum, f) => sum + f.fuel, 0))),
      );
      fill(
        charts,
        chartCard('Jobs finished per second', GridCharts.line(perSec, { format: fmt.num, test: 'chart-jobs', label: 'jobs/s' })),
        chartCard('Queue depth', GridCharts.line(series.map((p) => [p.at_ms, p.queued]), { test: 'chart-queue', label: 'queued' })),
      );
      fill(fuel, GridCharts.bars((s.fuel_by_node || []).map((f) => ({ label: f.node, value: f.fuel })), { test: 'chart-fuel' }));
    };
    await load();
    ctx.every(2000, () => load().catch(() => {}));
  }

  // ---- Jobs -------------------------------------------------------------

  const jobFilter = { state: '', q: '' };
  const JOB_STATES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];

  // Whether `job` matches the search box: a part of its id, tenant, node,
  // module or arguments.
  function matches(job) {
    const q = jobFilter.q.toLowerCase();
    if (!q) return true;
    return [job.id, job.tenant, job.node, job.module, ...(job.args || [])].some((v) => v && String(v).toLowerCase().includes(q));
  }

  async function jobsPage(main, ctx) {
    const jobs = new Map();
    let cursor = null;
    const body = h('div', { class: 'card table-card' });
    const more = h('button', { class: 'plain', hidden: true, test: 'jobs-more' }, 'Load more');
    const seg = h('div', { class: 'seg', test: 'state-filter' });
    for (const s of JOB_STATES) {
      const b = h('button', { type: 'button', 'data-state': s || 'all', class: jobFilter.state === s ? 'on' : null }, s ? `${ICONS[s]} ${s}` : 'All');
      b.addEventListener('click', () => {
        jobFilter.state = s;
        for (const x of seg.children) x.classList.toggle('on', x === b);
        reload();
      });
      seg.append(b);
    }
    const search = h('input', { type: 'search', placeholder: 'Filter by id, tenant, node, module…', value: jobFilter.q, test: 'job-search' });
    search.addEventListener('input', () => {
      jobFilter.q = search.value.trim();
      draw();
    });
    const actions = me.kind === 'node' ? [] : [link('#/submit', 'Submit a job', { class: 'button-link', test: 'go-submit' })];
    const sub = me.kind === 'node' ? `Jobs that ran on ${me.node}` : me.kind === 'tenant' ? `Jobs of ${me.tenant}` : 'Every job on the grid';
    fill(main, head('Jobs', sub, ...actions), h('div', { class: 'filters' }, seg, search), body, h('div', { class: 'form-foot' }, more));

    const columns = me.kind === 'admin' ? ['state', 'id', 'tenant', 'module', 'node', 'fuel', 'wall', 'submitted'] : me.kind === 'tenant' ? ['state', 'id', 'module', 'node', 'fuel', 'wall', 'submitted'] : ['state', 'id', 'fuel', 'wall', 'reason', 'submitted'];
    let drawing = false;
    const draw = () => {
      if (drawing) return;
      drawing = true;
      requestAnimationFrame(() => {
        drawing = false;
        if (!ctx.alive) return;
        const shown = [...jobs.values()].filter(matches).sort(byNewest);
        fill(body, jobTable(shown, columns, jobFilter.state || jobFilter.q ? 'No jobs match.' : 'No jobs yet.'));
      });
    };
    const list = async (after) => {
      const answer = await api('GET', `/api/v1/jobs${query({ state: jobFilter.state, limit: 100, cursor: after })}`);
      if (!ctx.alive) return;
      if (!after) jobs.clear();
      for (const j of answer.jobs || []) jobs.set(j.id, j);
      cursor = answer.next_cursor || null;
      more.hidden = !cursor;
      draw();
    };
    const reload = () => list(null).catch((e) => showError(main, e));
    more.addEventListener('click', () => list(cursor).catch((e) => toast(e.message, true)));
    await list(null);
    ctx.on((event) => {
      if (event.kind === 'job' && event.job) {
        if (!jobFilter.state || event.job.state === jobFilter.state) jobs.set(event.job.id, event.job);
        else jobs.delete(event.job.id);
        draw();
      } else if (event.kind === 'reset' || event.kind === 'poll') {
        reload();
      }
    });
    // Running jobs' wall time moves on.
    ctx.every(1000, () => {
      if ([...jobs.values()].some((j) => j.state === 'running' || j.state === 'queued')) draw();
    });
  }

  // ---- One job ----------------------------------------------------------

  const OUTPUT_KEPT = 256 * 1024; // characters of output the page keeps

  async function jobPage(main, ctx, id) {
    let job = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
    if (!ctx.alive) return;
    const top = h('div', {});
    const info = h('div', {});
    const output = h('pre', { class: 'output', test: 'job-output' });
    const outputNote = h('p', { class: 'muted', hidden: true, test: 'job-output-note' });
    fill(main, top, info, h('div', { class: 'card' }, h('h2', {}, 'Output'), outputNote, output));

    const cancel = async () => {
      try {
        await api('POST', `/api/v1/jobs/${encodeURIComponent(id)}/cancel`);
        job = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
        render();
      } catch (e) {
        toast(e.message, true);
      }
    };

    const render = () => {
      const finished = !['queued', 'running'].includes(job.state);
      const actions = [];
      if (!finished && me.kind !== 'node') actions.push(h('button', { class: 'danger', onclick: cancel, test: 'job-cancel' }, 'Cancel'));
      fill(top, head(h('span', {}, stateBadge(job.state), ' ', h('span', { class: 'mono', test: 'job-id' }, job.id)), `Submitted ${fmt.ago(job.submitted_at_ms)}${job.tenant ? ` by ${job.tenant}` : ''}`, ...actions));
      const parts = [];
      if (job.state === 'queued' && job.waiting) parts.push(h('div', { class: 'notice', test: 'job-waiting' }, `Waiting: ${job.waiting}`));
      if (finished) {
        const ok = job.state === 'succeeded';
        parts.push(
          h(
            'div',
            { class: ok ? 'card' : 'card', test: 'job-result' },
            h('h2', {}, 'Result'),
            kv([
              ['Outcome', job.outcome || job.state, 'job-outcome'],
              ['Exit code', job.exit_code],
              ['Reason', job.reason],
              ['Fuel used', job.fuel_used != null ? fmt.num(job.fuel_used) : null],
              ['Wall time', fmt.span(job.wall_ms)],
            ]),
          ),
        );
      }
      const limits = job.limits || {};
      const spec = kv([
        ['Tenant', job.tenant],
        ['Module', job.module ? h('code', {}, job.module) : null],
        ['Arguments', job.args && job.args.length ? h('code', {}, job.args.join(' ')) : job.args ? '(none)' : null],
        ['Node', job.node ? link(nodeHref(job.node), job.node) : '—', 'job-node'],
        ['Submitted', fmt.time(job.submitted_at_ms)],
        ['Started', job.started_at_ms ? fmt.time(job.started_at_ms) : null],
        ['Finished', job.finished_at_ms ? fmt.time(job.finished_at_ms) : null],
        ['Wall time', fmt.span(wall(job))],
        ['Fuel used', fmt.num(job.fuel_used)],
        ['Attempts', job.attempts],
        ['Replicas', job.replicas != null ? `${job.replicas}${job.quorum ? `, quorum ${job.quorum}` : ''}` : null],
        ['Deterministic', job.deterministic != null ? (job.deterministic ? 'yes' : 'no') : null],
        ['Fuel limit', limits.fuel != null ? fmt.num(limits.fuel) : null],
        ['Memory limit', limits.memory != null ? fmt.bytes(limits.memory) : null],
        ['Timeout', limits.timeout_ms != null ? fmt.span(limits.timeout_ms) : null],
        ['Output limit', limits.output != null ? fmt.bytes(limits.output) : null],
      ]);
      const history = job.history || [];
      const attempts = history.length
        ? h(
            'table',
            { test: 'job-history' },
            h('thead', {}, h('tr', {}, ['Node', 'Started', 'Ended', 'End', 'Digest', 'Verdict'].map((t) => h('th', {}, t)))),
            h(
              'tbody',
              {},
              history.map((a) =>
                h(
                  'tr',
                  {},
                  h('td', {}, a.node ? link(nodeHref(a.node), a.node) : '—'),
                  h('td', {}, fmt.time(a.started_at_ms)),
                  h('td', {}, a.ended_at_ms ? fmt.time(a.ended_at_ms) : '—'),
                  h('td', {}, a.end || '—'),
                  h('td', { class: 'mono' }, short(a.digest) || '—'),
                  h('td', {}, a.verdict || '—'),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'Not started yet.');
      parts.push(h('div', { class: 'grid' }, h('div', { class: 'card' }, h('h2', {}, 'Spec'), spec), h('div', { class: 'card' }, h('h2', {}, 'Attempts and replicas'), attempts)));
      fill(info, parts);
    };
    render();

    // Job changes from the page's stream; a poll tick re-reads the job.
    ctx.on(async (event) => {
      if (event.kind === 'job' && event.job && event.job.id === job.id) {
        // A change carries the listing's row, without the spec's fields.
        const row = { ...event.job };
        for (const k of ['replicas', 'deterministic', 'limits']) if (row[k] == null) delete row[k];
        job = { ...job, ...row };
        render();
      } else if (event.kind === 'poll' || event.kind === 'reset') {
        const fresh = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`).catch(() => null);
        if (fresh && ctx.alive) {
          job = fresh;
          render();
        }
      }
    });
    ctx.every(1000, () => {
      if (job.state === 'running' || job.state === 'queued') render();
    });
    tailOutput(ctx, id, output, outputNote, (end) => {
      job = end;
      render();
    });
  }

  // Appends `text` of `stream` to `pre`, keeping only the last OUTPUT_KEPT
  // characters.
  function appendOutput(pre, stream, text) {
    const last = pre.lastChild;
    if (last && last.dataset.stream === stream) last.textContent += text;
    else pre.append(h('span', { class: stream, 'data-stream': stream }, text));
    let size = pre.textContent.length;
    while (size > OUTPUT_KEPT && pre.firstChild) {
      const first = pre.firstChild;
      const extra = size - OUTPUT_KEPT;
      if (first.textContent.length > extra) {
        first.textContent = first.textContent.slice(extra);
        size -= extra;
      } else {
        size -= first.textContent.length;
        first.remove();
      }
    }
    const nearBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
    if (nearBottom) pre.scrollTop = pre.scrollHeight;
  }

  // The live output tail: server-sent events from the job's logs, which
  // resume by byte offset when the connection drops; if the stream cannot
  // be had, the plain text, re-read every two seconds while the job runs.
  function tailOutput(ctx, id, pre, note, onEnd) {
    const url = `/api/v1/jobs/${encodeURIComponent(id)}/logs`;
    const source = new EventSource(url);
    let got = false;
    ctx.defer(() => source.close());
    for (const stream of ['stdout', 'stderr']) {
      source.addEventListener(stream, (e) => {
        got = true;
        appendOutput(pre, stream, e.data);
      });
    }
    source.addEventListener('end', (e) => {
      source.close();
      pre.dataset.ended = 'true';
      if (!pre.textContent) {
        note.textContent = 'The job printed nothing.';
        note.hidden = false;
      }
      try {
        onEnd(JSON.parse(e.data));
      } catch (err) {
        /* the job page keeps what it has */
      }
    });
    // The job starts again on another node: its output starts over.
    source.addEventListener('retry', (e) => {
      appendOutput(pre, 'note', `\n--- attempt ${e.data} starts over ---\n`);
    });
    // An `error` event is the master's refusal, in words; a bare error is
    // the connection's, which the browser retries on its own.
    source.onerror = (e) => {
      if (typeof e.data === 'string') {
        source.close();
        note.textContent = `Output not available: ${e.data}`;
        note.hidden = false;
        return;
      }
      if (source.readyState !== EventSource.CLOSED || got) return;
      plain();
    };
    const plain = async () => {
      const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' }).catch(() => null);
      if (!ctx.alive || !res) return;
      if (!res.ok) {
        let message = `${res.status} ${res.statusText}`;
        try {
          message = (await res.json()).error || message;
        } catch (e) {
          /* keep the status */
        }
        note.textContent = `Output not available: ${message}`;
        note.hidden = false;
        return;
      }
      const text = await res.text();
      fill(pre, h('span', { class: 'stdout' }, text.slice(-OUTPUT_KEPT)));
      const job = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`).catch(() => null);
      if (job && ctx.alive && ['queued', 'running'].includes(job.state)) setTimeout(plain, 2000);
    };
  }

  // ---- Submit -----------------------------------------------------------

  function lines(text) {
    return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
  }

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function submitPage(main, ctx) {
    const field = (label, input, hint) => h('div', {}, h('label', {}, label, hint ? h('span', { class: 'muted' }, ` ${hint}`) : null), input);
    const file = h('input', { type: 'file', accept: '.wasm,application/wasm', required: true, test: 'submit-file' });
    const args = h('textarea', { placeholder: 'one argument per line', test: 'submit-args' });
    const stdin = h('textarea', { placeholder: 'text given to the job on stdin', test: 'submit-stdin' });
    const env = h('textarea', { placeholder: 'KEY=value, one per line', test: 'submit-env' });
    const fuel = h('input', { type: 'text', placeholder: 'e.g. 10G', test: 'submit-fuel' });
    const memory = h('input', { type: 'text', placeholder: 'e.g. 64MiB', test: 'submit-memory' });
    const timeout = h('input', { type: 'text', placeholder: 'e.g. 30s', test: 'submit-timeout' });
    const tenant = h('input', { type: 'text', placeholder: 'tenant to run it for', test: 'submit-tenant' });
    const status = h('span', { class: 'muted', test: 'submit-status' });
    const go = h('button', { type: 'submit', test: 'submit-go' }, 'Submit job');
    const form = h(
      'form',
      { class: 'card', test: 'submit-form' },
      field('Module', file, '(.wasm)'),
      h('div', { class: 'form-grid' }, field('Arguments', args), field('Environment', env), field('Stdin', stdin)),
      h('div', { class: 'form-grid' }, field('Fuel limit', fuel), field('Memory limit', memory), field('Timeout', timeout), me.kind === 'admin' ? field('Tenant', tenant, '(admin)') : null),
      h('div', { class: 'form-foot' }, go, status),
    );
    fill(main, head('Submit a job', 'Upload a WebAssembly module and run it on the grid'), form);
    let key = newKey();
    form.addEventListener('input', () => {
      key = newKey();
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const module = file.files[0];
      if (!module) return;
      go.disabled = true;
      try {
        status.textContent = `Uploading ${module.name}…`;
        const { hash } = await api('PUT', '/api/v1/modules', module);
        status.textContent = 'Submitting…';
        const spec = { module: hash, args: lines(args.value) };
        const vars = {};
        for (const l of lines(env.value)) {
          const at = l.indexOf('=');
          if (at < 1) throw new Error(`environment line \`${l}\` is not KEY=value`);
          vars[l.slice(0, at)] = l.slice(at + 1);
        }
        if (Object.keys(vars).length) spec.env = vars;
        if (stdin.value) spec.stdin = stdin.value;
        if (fuel.value.trim()) spec.fuel = /^\d+$/.test(fuel.value.trim()) ? Number(fuel.value.trim()) : fuel.value.trim();
        if (memory.value.trim()) spec.memory = memory.value.trim();
        if (timeout.value.trim()) spec.timeout = timeout.value.trim();
        if (me.kind === 'admin' && tenant.value.trim()) spec.tenant = tenant.value.trim();
        const job = await api('POST', '/api/v1/jobs', spec, { 'Idempotency-Key': key });
        location.hash = jobHref(job.id);
      } catch (err) {
        status.textContent = '';
        toast(err.message, true);
      } finally {
        go.disabled = false;
      }
    });
  }

  // ---- Nodes ------------------------------------------------------------

  function nodeState(node) {
    const tags = [h('span', { class: `pill ${node.state}`, test: 'node-state' }, node.state)];
    if (node.quarantined) tags.push(' ', h('span', { class: 'pill quarantined' }, 'quarantined'));
    return tags;
  }

  function trustCell(node, after) {
    if (node.trusted) return h('span', { title: 'trusted' }, `✅ ${fmt.num(node.trust)}`);
    return h('span', { title: after ? `trusted after ${after}` : '' }, after ? `${fmt.num(node.trust)} / ${after}` : fmt.num(node.trust));
  }

  async function nodesPage(main, ctx) {
    const nodes = new Map();
    let after = null;
    const body = h('div', { class: 'card table-card' });
    fill(main, head('Nodes', 'Machines that run jobs for the grid'), body);
    const draw = () => {
      const rows = [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
      if (!rows.length) return fill(body, h('div', { class: 'empty' }, 'No nodes have joined yet.'));
      const cols = ['Node', 'State', 'Owner', 'Slots', 'Memory', 'Fuel used', 'Jobs run', 'Lost', 'Credit', 'Trust', 'Last seen'];
      fill(
        body,
        h(
          'table',
          { test: 'node-table' },
          h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: i >= 5 && i <= 9 ? 'num' : null }, c)))),
          h(
            'tbody',
            {},
            rows.map((n) =>
              h(
                'tr',
                { test: 'node-row', 'data-node': n.name, 'data-state': n.state },
                h('td', {}, link(nodeHref(n.name), n.name, { test: 'node-link' })),
                h('td', {}, nodeState(n)),
                h('td', {}, n.owner || '—'),
                h('td', {}, `${n.slots_used ?? 0} / ${n.slots ?? 0}`),
                h('td', {}, `${fmt.bytes(n.memory_used ?? 0)} / ${fmt.bytes(n.memory ?? 0)}`),
                h('td', { class: 'num' }, fmt.num(n.fuel_used)),
                h('td', { class: 'num' }, fmt.num(n.jobs_run)),
                h('td', { class: 'num' }, fmt.num(n.jobs_lost)),
                h('td', { class: 'num' }, fmt.num(n.credit)),
                h('td', { class: 'num' }, trustCell(n, after)),
                h('td', {}, fmt.ago(n.last_seen_ms)),
              ),
            ),
          ),
        ),
      );
    };
    const load = async () => {
      const answer = await api('GET', '/api/v1/nodes');
      if (!ctx.alive) return;
      nodes.clear();
      for (const n of answer.nodes || []) nodes.set(n.name, n);
      after = answer.trust_after ?? null;
      draw();
    };
    await load();
    ctx.on((event) => {
      if (event.kind === 'node' && event.node) {
        nodes.set(event.node.name, event.node);
        draw();
      } else if (event.kind === 'reset' || event.kind === 'poll') {
        load().catch(() => {});
      }
    });
  }

  // A node's page, for the admin, a tenant, or (`self`) the volunteer
  // whose machine it is.
  async function nodeView(main, ctx, name, self) {
    const path = self ? '/api/v1/nodes/self' : `/api/v1/nodes/${encodeURIComponent(name)}`;
    const top = h('div', {});
    const stats = h('div', { class: 'stats' });
    const charts = h('div', { class: 'grid' });
    const jobsCard = h('div', { class: 'card table-card' });
    fill(main, top, stats, charts, h('h2', {}, self ? 'Jobs your machine ran' : 'Jobs on this node'), jobsCard);
    let node = null;

    const act = async (verb, question) => {
      if (question && !confirm(question)) return;
      try {
        await api('POST', `/api/v1/nodes/${encodeURIComponent(node.name)}/${verb}`);
        const done = { drain: 'draining', undrain: 'takes jobs again', revoke: 'revoked', unquarantine: 'quarantine cleared' };
        toast(`${node.name}: ${done[verb] || verb}`);
        await load();
      } catch (e) {
        toast(e.message, true);
      }
    };

    const load = async () => {
      const answer = await api('GET', path);
      if (!ctx.alive) return;
      node = answer.node;
      const series = answer.series || [];
      const actions = [];
      if (me.kind === 'admin') {
        if (node.state === 'draining') actions.push(h('button', { class: 'plain', onclick: () => act('undrain'), test: 'node-undrain' }, 'Undrain'));
        else actions.push(h('button', { class: 'plain', onclick: () => act('drain'), test: 'node-drain' }, 'Drain'));
        if (node.quarantined) actions.push(h('button', { class: 'plain', onclick: () => act('unquarantine'), test: 'node-unquarantine' }, 'Clear quarantine'));
        actions.push(h('button', { class: 'danger', onclick: () => act('revoke', `Revoke ${node.name}? It will no longer be able to connect.`), test: 'node-revoke' }, 'Revoke'));
      }
      const sub = [self ? 'What your machine gave the grid' : null, node.owner ? `owner ${node.owner}` : null, node.version ? `version ${node.version}` : null, node.address ? node.address : null, `seen ${fmt.ago(node.last_seen_ms)}`].filter(Boolean).join(' · ');
      fill(top, head(h('span', { test: 'node-name' }, node.name, ' ', nodeState(node)), sub, ...actions));
      fill(
        stats,
        stat('Slots in use', `${node.slots_used ?? 0} / ${node.slots ?? 0}`, 'node-slots'),
        stat('Memory in use', `${fmt.bytes(node.memory_used ?? 0)}`, 'node-memory'),
        stat(self ? 'Fuel given' : 'Fuel used', fmt.num(node.fuel_used), 'node-fuel'),
        stat('Jobs run', fmt.num(node.jobs_run), 'node-jobs-run'),
        stat('Jobs lost', fmt.num(node.jobs_lost), 'node-jobs-lost'),
        stat('Credit', fmt.num(node.credit), 'node-credit'),
        stat('Trust', node.trusted ? `✅ ${fmt.num(node.trust)}` : fmt.num(node.trust), 'node-trust'),
      );
      fill(
        charts,
        chartCard('Slots in use', GridCharts.line(series.map((p) => [p.at_ms, p.slots_used]), { test: 'chart-slots', label: 'slots in use' })),
        chartCard('Memory in use', GridCharts.line(series.map((p) => [p.at_ms, p.memory_used]), { format: fmt.bytes, test: 'chart-memory', label: 'memory' })),
        chartCard('Fuel burned per second', GridCharts.line(GridCharts.rate(series.map((p) => [p.at_ms, p.fuel])), { test: 'chart-node-fuel', label: 'fuel/s' })),
      );
      const jobs = await api('GET', `/api/v1/jobs${query(self ? { limit: 100 } : { node: node.name, limit: 100 })}`).catch(() => null);
      if (!ctx.alive) return;
      if (jobs) {
        const cols = self ? ['state', 'id', 'fuel', 'wall', 'reason', 'submitted'] : me.kind === 'admin' ? ['state', 'id', 'tenant', 'fuel', 'wall', 'reason', 'submitted'] : ['state', 'id', 'fuel', 'wall', 'submitted'];
        fill(jobsCard, jobTable((jobs.jobs || []).sort(byNewest), cols, 'No jobs have run here yet.'));
      }
    };
    await load();
    ctx.every(2000, () => load().catch(() => {}));
  }

  function nodePage(main, ctx, name) {
    return nodeView(main, ctx, name, false);
  }

  function mePage(main, ctx) {
    if (me.kind !== 'node') {
      fill(main, head('My node', ''), h('div', { class: 'notice' }, 'This page is for volunteers: log in with your node’s credential to see what your machine gave.'));
      return Promise.resolve();
    }
    return nodeView(main, ctx, me.node, true);
  }

  // ---- Tenants ----------------------------------------------------------

  async function tenantsPage(main, ctx) {
    const body = h('div', { class: 'card table-card' });
    fill(main, head('Tenants', 'Who uses the grid, and how much'), body);
    const limit = (v, f) => (v ? f(v) : 'no limit');
    const load = async () => {
      const answer = await api('GET', '/api/v1/tenants');
      if (!ctx.alive) return;
      const tenants = (answer.tenants || []).sort((a, b) => a.name.localeCompare(b.name));
      if (!tenants.length) return fill(body, h('div', { class: 'empty' }, 'No tenants yet.'));
      const cols = ['Tenant', 'Running', 'Queued', 'Jobs run', 'Fuel burned', 'Fuel available', 'Max running', 'Max queued', 'Fuel per hour', 'Since'];
      fill(
        body,
        h(
          'table',
          { test: 'tenant-table' },
          h('thead', {}, h('tr', {}, cols.map((c, i) => h('th', { class: i && i < 9 ? 'num' : null }, c)))),
          h(
            'tbody',
            {},
            tenants.map((t) => {
              const q = t.quota || {};
              return h(
                'tr',
                { test: 'tenant-row', 'data-tenant': t.name },
                h('td', {}, t.name),
                [t.running, t.queued, t.jobs_run, t.fuel_burned, t.fuel_available].map((v) => h('td', { class: 'num' }, fmt.num(v))),
                h('td', { class: 'num' }, limit(q.max_running, fmt.num)),
                h('td', { class: 'num' }, limit(q.max_queued, fmt.num)),
                h('td', { class: 'num' }, limit(q.fuel_per_hour, fmt.num)),
                h('td', { title: fmt.time(t.created_ms) }, fmt.ago(t.created_ms)),
              );
            }),
          ),
        ),
      );
    };
    await load();
    ctx.every(5000, () => load().catch(() => {}));
  }

  document.addEventListener('DOMContentLoaded', boot);
})();
