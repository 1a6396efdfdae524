/* global document, window, location, history */
// The Backtrack console's page: plain DOM, no build. Every value from the API goes in through
// textContent (never innerHTML).

const STATUSES = ['stuck', 'compensating', 'running', 'failed', 'compensated', 'completed'];
const CHARTED = ['stuck', 'compensating', 'running', 'failed'];
const main = document.getElementById('main');

// --- session: the token comes in the link's fragment (never sent to the server in a URL)
const fragmentToken = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (fragmentToken) {
  sessionStorage.setItem('backtrack-token', decodeURIComponent(fragmentToken[1]));
  history.replaceState(null, '', '#/');
}
const token = sessionStorage.getItem('backtrack-token');
let session = { csrf: '', operator: '' };
const history_ = []; // overview counts over time, while the page is open
let latestOverview;

const operatorInput = document.getElementById('operator');
operatorInput.value = localStorage.getItem('backtrack-operator') ?? '';
operatorInput.addEventListener('change', () =>
  localStorage.setItem('backtrack-operator', operatorInput.value.trim()),
);

function headers(extra = {}) {
  return { ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra };
}

async function api(method, path, body) {
  const init = { method, headers: headers(), credentials: 'same-origin' };
  if (method !== 'GET') {
    init.headers = headers({
      'content-type': 'application/json',
      'x-backtrack-csrf': session.csrf,
    });
    init.body = JSON.stringify({ ...body, operator: operatorInput.value.trim() || undefined });
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok)
    throw new Error(data.error ? `${data.error.message} (${data.error.code})` : res.statusText);
  return data;
}

// --- tiny DOM helpers
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const status = (s) => h('span', { class: `status s-${s}`, 'data-status': s }, s);
const table = (heads, rows, attrs = {}) =>
  h(
    'table',
    attrs,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        heads.map((x) => h('th', {}, x)),
      ),
    ),
    h('tbody', {}, rows),
  );
const json = (v) => h('pre', {}, JSON.stringify(v, null, 2));
const time = (iso) => (iso ? new Date(iso).toLocaleString() : '');

function toast(text, bad = false) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.className = `show${bad ? ' bad' : ''}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.className = ''), 5000);
}

function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.showModal();
  });
}

async function act(text, fn) {
  if (!(await confirmAction(text))) return;
  try {
    const result = await fn();
    toast('Done.');
    return result;
  } catch (error) {
    toast(error.message, true);
  } finally {
    route();
  }
}

// --- pages
function render(...nodes) {
  main.replaceChildren(...nodes);
}

function overviewView(o) {
  const tiles = h(
    'div',
    { class: 'tiles' },
    STATUSES.map((s) =>
      h(
        'div',
        { class: `tile s-${s}`, id: `count-${s}` },
        h('span', { class: 'n' }, o.sagas[s] ?? 0),
        s,
      ),
    ),
  );
  const attention = o.attention.length
    ? table(
        ['saga', 'definition', 'status', 'updated', 'why'],
        o.attention.map((r) =>
          h(
            'tr',
            { 'data-saga-id': r.sagaId },
            h('td', {}, h('a', { href: `#/sagas/${encodeURIComponent(r.sagaId)}` }, r.sagaId)),
            h('td', {}, `${r.sagaName} v${r.definitionVersion}`),
            h('td', {}, status(r.status)),
            h('td', {}, time(r.updatedAt)),
            h('td', {}, r.why),
          ),
        ),
        { id: 'attention' },
      )
    : h('p', { class: 'muted', id: 'attention' }, 'No saga needs attention.');
  const running = o.runs.filter((r) => r.status === 'running' || r.activeHere);
  const runs = running.length
    ? table(['run', 'service@version', 'progress', 'status'], running.map(runRow), {
        id: 'runs-active',
      })
    : h('p', { class: 'muted', id: 'runs-active' }, 'No rollback run in progress.');
  const dl = o.deadLetters.length
    ? table(
        ['destination', 'dead letters'],
        o.deadLetters.map((d) =>
          h(
            'tr',
            { 'data-destination': d.name },
            h('td', {}, h('a', { href: `#/dead-letters/${encodeURIComponent(d.name)}` }, d.name)),
            h('td', {}, d.count ?? h('span', { class: 'err' }, d.error)),
          ),
        ),
      )
    : h(
        'p',
        { class: 'muted' },
        'No dead-letter destination given (backtrack ui --dead-letters <list>).',
      );
  return [
    h('h1', {}, 'Overview'),
    tiles,
    h('h2', {}, 'Sagas over time (since this page opened)'),
    chart(),
    h('h2', {}, 'Needs attention (stuck first)'),
    attention,
    h('h2', {}, 'Rollback runs in progress'),
    runs,
    h('h2', {}, 'Dead letters'),
    dl,
    h('p', { class: 'muted' }, `updated ${time(o.at)}`),
  ];
}

function runRow(r) {
  const total = r.totalItems || 0;
  return h(
    'tr',
    { 'data-run-id': r.runId },
    h('td', {}, h('a', { href: `#/runs/${encodeURIComponent(r.runId)}` }, r.runId)),
    h('td', {}, `${r.service}@${r.version} (${r.strategy})`),
    h(
      'td',
      {},
      h('progress', {
        max: Math.max(total, 1),
        value: total ? r.finished : 1,
        'data-finished': r.finished,
      }),
      ` ${r.finished}/${total}`,
    ),
    h('td', {}, status(r.status)),
  );
}

function chart() {
  const width = 640;
  const height = 120;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const max = Math.max(1, ...history_.flatMap((p) => CHARTED.map((s) => p[s] ?? 0)));
  const colours = {
    stuck: '#c0392b',
    compensating: '#d68910',
    running: '#2e86c1',
    failed: '#7d3c98',
  };
  CHARTED.forEach((s, i) => {
    const points = history_.map((p, j) => {
      const x = history_.length < 2 ? 0 : (j / (history_.length - 1)) * (width - 10) + 5;
      const y = height - 15 - ((p[s] ?? 0) / max) * (height - 30);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', points.join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', colours[s]);
    line.setAttribute('stroke-width', '2');
    svg.append(line);
    const label = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    label.setAttribute('x', 8 + i * 110);
    label.setAttribute('y', height - 2);
    label.setAttribute('fill', colours[s]);
    label.setAttribute('font-size', '11');
    label.textContent = `${s} ${history_.at(-1)?.[s] ?? 0}`;
    svg.append(label);
  });
  return svg;
}

async function sagasPage(params) {
  const all = params.get('all') === '1';
  const { items } = await api('GET', `/api/sagas${all ? '?all=1' : ''}`);
  render(
    h('h1', {}, all ? 'All sagas' : 'Sagas needing attention'),
    h(
      'p',
      {},
      h(
        'a',
        { href: all ? '#/sagas' : '#/sagas?all=1' },
        all ? 'only those needing attention' : 'show all',
      ),
    ),
    table(
      ['saga', 'definition', 'status', 'updated', 'why'],
      items.map((r) =>
        h(
          'tr',
          { 'data-saga-id': r.sagaId },
          h('td', {}, h('a', { href: `#/sagas/${encodeURIComponent(r.sagaId)}` }, r.sagaId)),
          h('td', {}, `${r.sagaName} v${r.definitionVersion}`),
          h('td', {}, status(r.status)),
          h('td', {}, time(r.updatedAt)),
          h('td', {}, r.why),
        ),
      ),
    ),
  );
}

async function sagaPage(id) {
  const { record: r, timeline } = await api('GET', `/api/sagas/${encodeURIComponent(id)}`);
  const results = Object.fromEntries(
    Object.entries(r.steps)
      .filter(([, s]) => s.result !== undefined)
      .map(([n, s]) => [n, s.result]),
  );
  const rows = timeline.map((e) =>
    h(
      'tr',
      {
        class: `phase-${e.phase}${e.stuck ? ' stuck' : ''}`,
        'data-step': e.step,
        'data-phase': e.phase,
      },
      h('td', {}, e.order ?? '–'),
      h('td', {}, e.phase === 'run' ? e.step : `↩ compensate ${e.step}`),
      h('td', {}, status(e.status)),
      h('td', {}, e.attempts),
      h('td', {}, time(e.startedAt)),
      h('td', {}, e.durationMs === undefined ? '' : `${e.durationMs} ms`),
      h('td', {}, h('code', {}, e.idempotencyKey)),
      h(
        'td',
        { class: e.error ? 'err' : '' },
        e.resolution
          ? `resolved: ${e.resolution}`
          : e.error
            ? `${e.error.name}: ${e.error.message}`
            : '',
      ),
    ),
  );
  const actions = [];
  if (r.status === 'stuck' && r.stuck) {
    const step = h(
      'select',
      { id: 'resolve-step' },
      r.stuck.steps.map((s) => h('option', { value: s }, s)),
    );
    const reason = h('textarea', {
      id: 'resolve-reason',
      placeholder: 'What was done by hand (required, kept in the saga log)',
    });
    actions.push(
      h(
        'fieldset',
        {},
        h('legend', {}, 'Retry'),
        h(
          'p',
          { class: 'muted' },
          `Run the failed ${r.stuck.phase === 'forward' ? 'step' : 'compensations'} again.`,
        ),
        h(
          'button',
          {
            id: 'retry',
            class: 'primary',
            onclick: () =>
              act(`Retry saga ${r.sagaId}?`, () =>
                api('POST', `/api/sagas/${encodeURIComponent(r.sagaId)}/retry`, {}),
              ),
          },
          'Retry…',
        ),
      ),
      h(
        'fieldset',
        {},
        h('legend', {}, 'Resolve by hand'),
        step,
        ' ',
        reason,
        ' ',
        h(
          'button',
          {
            id: 'resolve',
            class: 'danger',
            onclick: () => {
              if (!reason.value.trim()) return toast('A reason is required.', true);
              return act(`Mark step ${step.value} of ${r.sagaId} as handled by hand?`, () =>
                api('POST', `/api/sagas/${encodeURIComponent(r.sagaId)}/resolve`, {
                  step: step.value,
                  reason: reason.value,
                }),
              );
            },
          },
          'Resolve…',
        ),
      ),
    );
  }
  if (r.status === 'running') {
    const reason = h('textarea', {
      id: 'cancel-reason',
      placeholder: 'Why (required, kept in the saga log)',
    });
    actions.push(
      h(
        'fieldset',
        {},
        h('legend', {}, 'Cancel'),
        reason,
        ' ',
        h(
          'button',
          {
            id: 'cancel',
            class: 'danger',
            onclick: () => {
              if (!reason.value.trim()) return toast('A reason is required.', true);
              return act(`Cancel saga ${r.sagaId} and compensate its completed steps?`, () =>
                api('POST', `/api/sagas/${encodeURIComponent(r.sagaId)}/cancel`, {
                  reason: reason.value,
                }),
              );
            },
          },
          'Cancel…',
        ),
      ),
    );
  }
  render(
    h('h1', {}, `Saga ${r.sagaId} `, h('span', { id: 'saga-status' }, status(r.status))),
    h(
      'p',
      {},
      `${r.sagaName} · definition version ${r.definitionVersion} · created ${time(r.createdAt)} · updated ${time(r.updatedAt)} · revision ${r.revision}`,
    ),
    r.failure
      ? h(
          'p',
          { class: 'err' },
          `Stopped going forward: ${r.failure.reason}${r.failure.step ? ` at ${r.failure.step}` : ''}: ${r.failure.error.message}`,
        )
      : '',
    r.stuck
      ? h(
          'p',
          { class: 'err' },
          `STUCK (${r.stuck.phase}) at ${r.stuck.steps.join(', ')}: ${r.stuck.errors.map((e) => e.message).join('; ')}`,
        )
      : '',
    actions.length ? h('div', { class: 'actions' }, actions) : '',
    h('h2', {}, 'Timeline'),
    table(
      [
        '#',
        'step',
        'status',
        'attempts',
        'started',
        'duration',
        'idempotency key',
        'error / resolution',
      ],
      rows,
      {
        class: 'timeline',
        id: 'timeline',
      },
    ),
    h(
      'p',
      { class: 'muted' },
      'Order is the order the saga log recorded; times are those of the latest attempt.',
    ),
    ...(r.operatorLog?.length
      ? [
          h('h2', {}, 'Operator log'),
          table(
            ['when', 'who', 'action', 'step', 'reason'],
            r.operatorLog.map((a) =>
              h(
                'tr',
                {},
                h('td', {}, time(a.at)),
                h('td', {}, a.by),
                h('td', {}, a.action),
                h('td', {}, a.step ?? ''),
                h('td', {}, a.reason ?? ''),
              ),
            ),
            { id: 'operator-log' },
          ),
        ]
      : []),
    h('h2', {}, 'Input'),
    json(r.input),
    h('h2', {}, 'Results'),
    json(results),
  );
}

async function runsPage() {
  const { items } = await api('GET', '/api/rollback/runs');
  render(
    h('h1', {}, 'Rollback runs'),
    items.length
      ? table(['run', 'service@version', 'progress', 'status'], items.map(runRow), { id: 'runs' })
      : h('p', { class: 'muted' }, 'No rollback runs.'),
  );
}

async function runPage(id) {
  const d = await api('GET', `/api/rollback/runs/${encodeURIComponent(id)}`);
  const total = d.run.totalItems;
  const resultBox = h('div', { id: 'run-result' });
  render(
    h(
      'h1',
      {},
      `Rollback run ${d.run.runId} `,
      h('span', { id: 'run-status' }, status(d.run.status)),
    ),
    h(
      'p',
      {},
      `${d.run.service}@${d.run.version} · ${d.run.strategy} · plan ${d.run.planId} · updated ${time(d.run.updatedAt)}`,
      d.run.lease ? ` · held by ${d.run.lease.owner}` : '',
    ),
    h(
      'p',
      {},
      h('progress', {
        id: 'run-progress',
        max: Math.max(total, 1),
        value: total ? d.finished : 1,
        'data-run-id': d.run.runId,
      }),
      h('span', { id: 'run-progress-text' }, ` ${d.finished}/${total} items`),
    ),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          id: 'resume',
          class: 'primary',
          onclick: () =>
            act(`Resume run ${id}? It publishes what is left.`, () =>
              api('POST', `/api/rollback/runs/${encodeURIComponent(id)}/resume`, {}),
            ),
        },
        'Resume…',
      ),
      h(
        'button',
        {
          id: 'dry-run',
          onclick: async () => {
            try {
              const r = await api(
                'POST',
                `/api/rollback/runs/${encodeURIComponent(id)}/dry-run`,
                {},
              );
              resultBox.replaceChildren(
                h('h2', {}, 'Dry run (nothing published)'),
                json(r.summary),
              );
            } catch (error) {
              toast(error.message, true);
            }
          },
        },
        'Dry run',
      ),
    ),
    resultBox,
    h('h2', {}, 'Items by state'),
    table(
      ['state', 'items'],
      Object.entries(d.counts).map(([k, v]) =>
        h('tr', { 'data-state': k }, h('td', {}, k), h('td', {}, v)),
      ),
      { id: 'run-counts' },
    ),
    h('h2', {}, 'Needs a person'),
    d.plan.needsPerson.length
      ? table(
          ['original', 'type', 'reason', 'why'],
          d.plan.needsPerson.map((n) =>
            h(
              'tr',
              {},
              h('td', {}, h('code', {}, n.original.id)),
              h('td', {}, `${n.original.type} v${n.original.schemaVersion}`),
              h('td', {}, n.reason),
              h('td', {}, n.message),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'Nothing.'),
    d.attention.length ? h('h2', {}, 'Failed or waiting items') : '',
    d.attention.length
      ? table(
          ['item', 'state', 'why'],
          d.attention.map((a) =>
            h('tr', {}, h('td', {}, a.itemId), h('td', {}, a.state), h('td', {}, a.error ?? '')),
          ),
        )
      : '',
    h('h2', {}, `Effects (${d.plan.strategy})`),
    table(
      ['original event', 'time', 'publishes'],
      d.plan.items.map((i) =>
        h(
          'tr',
          {},
          h(
            'td',
            {},
            `${i.original.type} v${i.original.schemaVersion} `,
            h('code', {}, i.original.id),
          ),
          h('td', {}, time(i.original.time)),
          h('td', {}, i.publishes.map((m) => `${m.type} v${m.version}`).join(', ')),
        ),
      ),
    ),
    d.plan.sagas.length ? h('h2', {}, 'Sagas compensated through the engine') : '',
    d.plan.sagas.length
      ? table(
          ['saga', 'effects'],
          d.plan.sagas.map((s) =>
            h(
              'tr',
              {},
              h('td', {}, h('a', { href: `#/sagas/${encodeURIComponent(s.sagaId)}` }, s.sagaId)),
              h('td', {}, s.effects),
            ),
          ),
        )
      : '',
  );
}

async function deadLettersPage() {
  const { items } = await api('GET', '/api/dead-letters');
  render(
    h('h1', {}, 'Dead letters'),
    items.length
      ? table(
          ['destination', 'dead letters'],
          items.map((d) =>
            h(
              'tr',
              {},
              h('td', {}, h('a', { href: `#/dead-letters/${encodeURIComponent(d.name)}` }, d.name)),
              h('td', {}, d.count ?? d.error),
            ),
          ),
        )
      : h(
          'p',
          { class: 'muted' },
          'No dead-letter destination given (backtrack ui --dead-letters <list>).',
        ),
  );
}

async function deadLetterPage(name) {
  const d = await api('GET', `/api/dead-letters/${encodeURIComponent(name)}`);
  const path = `/api/dead-letters/${encodeURIComponent(name)}/redrive`;
  render(
    h('h1', {}, `Dead letters in ${name}`),
    h(
      'p',
      { class: 'muted' },
      'Browsed without consuming them. A re-driven one is removed only after its copy was routed and confirmed.',
    ),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          id: 'redrive-all',
          class: 'danger',
          disabled: d.items.length === 0,
          onclick: () =>
            act(`Re-drive every dead letter in ${name}?`, () => api('POST', path, { all: true })),
        },
        'Re-drive all…',
      ),
    ),
    d.items.length
      ? table(
          ['id', 'type', 'reason', 'attempt', 'from', 'message', ''],
          d.items.map((x) =>
            h(
              'tr',
              { 'data-dead-letter-id': x.id ?? '' },
              h('td', {}, h('code', {}, x.id ?? '?')),
              h('td', {}, x.type ?? ''),
              h(
                'td',
                {},
                h('strong', {}, x.reasonCode),
                ` ${x.code}: ${x.reason}`,
                x.error ? h('div', { class: 'err' }, x.error) : '',
              ),
              h('td', {}, x.attempt),
              h('td', {}, x.origin ?? ''),
              h(
                'td',
                {},
                h(
                  'details',
                  {},
                  h(
                    'summary',
                    {},
                    `${x.bodyBytes} bytes${x.truncated ? ` (first ${d.previewBytes} shown)` : ''}`,
                  ),
                  h('pre', {}, x.bodyPreview),
                  json(x.headers),
                ),
              ),
              h(
                'td',
                {},
                x.id
                  ? h(
                      'button',
                      {
                        class: 'redrive',
                        onclick: () =>
                          act(`Re-drive ${x.id} to ${x.origin ?? 'where it came from'}?`, () =>
                            api('POST', path, { id: x.id }),
                          ),
                      },
                      'Re-drive…',
                    )
                  : '',
              ),
            ),
          ),
          { id: 'dead-letters' },
        )
      : h('p', { class: 'muted', id: 'dead-letters' }, 'No dead letters.'),
  );
}

async function schemasPage(params) {
  const required = params.get('required') ?? 'BACKWARD';
  const d = await api('GET', `/api/schemas?required=${encodeURIComponent(required)}`);
  const verdict = d.check.error
    ? h('p', { class: 'err' }, d.check.error.message)
    : h(
        'p',
        { id: 'schema-verdict', class: d.check.ok ? '' : 'err' },
        d.check.ok
          ? `Compatible (${required}) with the snapshot.`
          : `INCOMPATIBLE (${required}) with the snapshot.`,
      );
  const byType = new Map((d.check.events ?? []).map((e) => [e.type, e]));
  render(
    h('h1', {}, 'Schemas'),
    h(
      'p',
      {},
      'Required level: ',
      ...['BACKWARD', 'FORWARD', 'FULL', 'NONE'].map((l) =>
        h('a', { href: `#/schemas?required=${l}`, style: 'margin-right:.6rem' }, l),
      ),
    ),
    verdict,
    table(
      ['type', 'versions', 'default', 'change', 'level', 'ok', 'problems'],
      d.types.map((t) => {
        const e = byType.get(t.type);
        return h(
          'tr',
          {},
          h('td', {}, t.type),
          h('td', {}, t.versions.join(', ')),
          h('td', {}, t.defaultVersion),
          h('td', {}, e?.status ?? ''),
          h('td', {}, e?.level ?? ''),
          h('td', {}, e ? (e.ok ? 'yes' : 'NO') : ''),
          h('td', {}, (e?.problems ?? []).map((p) => p.message ?? JSON.stringify(p)).join('; ')),
        );
      }),
    ),
  );
}

// --- routing
async function route() {
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query ?? '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('header nav a'))
    a.classList.toggle('active', a.getAttribute('href') === `#/${parts[0] ?? ''}`);
  try {
    if (parts.length === 0)
      render(...(latestOverview ? overviewView(latestOverview) : [h('p', {}, 'Loading…')]));
    else if (parts[0] === 'sagas' && parts[1]) await sagaPage(parts[1]);
    else if (parts[0] === 'sagas') await sagasPage(params);
    else if (parts[0] === 'runs' && parts[1]) await runPage(parts[1]);
    else if (parts[0] === 'runs') await runsPage();
    else if (parts[0] === 'dead-letters' && parts[1]) await deadLetterPage(parts[1]);
    else if (parts[0] === 'dead-letters') await deadLettersPage();
    else if (parts[0] === 'schemas') await schemasPage(params);
    else render(h('p', {}, 'Not found.'));
  } catch (error) {
    render(h('p', { class: 'err' }, error.message));
  }
}

// --- live updates: server-sent events read with fetch (so the token goes in a header)
async function stream() {
  const live = document.getElementById('live');
  for (;;) {
    try {
      const res = await fetch('/api/events', { headers: headers() });
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      live.classList.add('on');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) onEvent(event, JSON.parse(data));
        }
      }
    } catch {
      // reconnect below
    }
    live.classList.remove('on');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onEvent(event, data) {
  const [path] = (location.hash.slice(1) || '/').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (event === 'overview') {
    latestOverview = data;
    history_.push(data.sagas);
    if (history_.length > 300) history_.shift();
    if (parts.length === 0) render(...overviewView(data));
    if (parts[0] === 'runs' && parts[1]) {
      const run = data.runs.find((r) => r.runId === parts[1]);
      const bar = document.getElementById('run-progress');
      if (run && bar && Number(bar.value) !== run.finished) route();
    }
  } else if (event === 'rollback-progress' && parts[0] === 'runs' && parts[1] === data.runId) {
    const bar = document.getElementById('run-progress');
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = data.total ? data.finished : 1;
      document.getElementById('run-progress-text').textContent =
        ` ${data.finished}/${data.total} items (${data.state})`;
    }
  } else if (event === 'rollback-end' && parts[0] === 'runs' && parts[1] === data.runId) {
    if (data.error) toast(data.error, true);
    route();
  }
}

async function start() {
  try {
    session = await api('GET', '/api/session');
    if (!operatorInput.value) operatorInput.placeholder = session.operator;
  } catch (error) {
    render(
      h(
        'p',
        { class: 'err' },
        `${error.message}. Open the link printed by \`backtrack ui\` (it carries the token).`,
      ),
    );
    return;
  }
  window.addEventListener('hashchange', route);
  route();
  void stream();
}

void start();
