/**
 * The console's JSON API against the real Redis stores and RabbitMQ: status codes, shapes,
 * refusals (no token, cross-origin, no CSRF header, foreign Host), and that no secret reaches
 * the page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { createSagaEngine, defineSaga } from '@backtrack/core';
import { probeService, uniqueName } from '../../../../test/support/services.js';
import { createWorld, refunds, type World } from './world.js';

const redisInfo = await probeService('redis');
const rabbitInfo = await probeService('rabbitmq');

describe.skipIf(!redisInfo.available || !rabbitInfo.available)('backtrack ui: the API', () => {
  let w: World;
  let host: string;
  let csrf: string;

  beforeAll(async () => {
    w = await createWorld(redisInfo, rabbitInfo);
    host = new URL(w.url).host;
    csrf = (await get('/api/session')).json().csrf;
  });
  afterAll(async () => w?.close());

  const get = (url: string, headers: Record<string, string> = {}) =>
    w.server.app.inject({ method: 'GET', url, headers: { host, ...headers } });
  const post = (url: string, body: unknown = {}, headers: Record<string, string> = {}) =>
    w.server.app.inject({
      method: 'POST',
      url,
      payload: JSON.stringify(body),
      headers: {
        host,
        'content-type': 'application/json',
        origin: `http://${host}`,
        'sec-fetch-site': 'same-origin',
        'x-backtrack-csrf': csrf,
        ...headers,
      },
    });

  it('serves the pages with a strict content security policy', async () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/app.js', 'text/javascript'],
      ['/app.css', 'text/css'],
    ] as const) {
      const res = await get(path);
      expect(res.statusCode, path).toBe(200);
      expect(res.headers['content-type']).toContain(type);
      expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    }
    expect((await get('/')).body).toContain('<script type="module" src="/app.js">');
  });

  it('GET /api/session: what the page needs, and no connection URL or password', async () => {
    const res = await get('/api/session');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      tokenRequired: false,
      operator: 'test-operator',
      transport: 'rabbitmq',
      deadLetters: [w.dlq],
      sagaDefinitions: [{ name: 'ui-order', version: 1 }],
    });
    expect(body.csrf).toMatch(/^[\w-]{20,}$/);
    expect(res.body).not.toMatch(/amqp:|redis:|guest/);
  });

  it('GET /api/overview: counts by status, stuck sagas first, runs with progress, dead letters', async () => {
    const sagaId = await w.startStuckSaga();
    const runId = await w.createRun(3);
    w.deadLetter('dl-overview');
    await expect.poll(() => w.dlqCount()).toBe(1);
    const res = await get('/api/overview');
    expect(res.statusCode).toBe(200);
    const o = res.json();
    expect(o.sagas.stuck).toBeGreaterThanOrEqual(1);
    expect(Object.keys(o.sagas)).toEqual([
      'stuck',
      'compensating',
      'running',
      'failed',
      'compensated',
      'completed',
    ]);
    expect(o.attention[0]).toMatchObject({ status: 'stuck' });
    expect(o.attention.map((s: { sagaId: string }) => s.sagaId)).toContain(sagaId);
    expect(o.runs).toContainEqual(
      expect.objectContaining({ runId, status: 'running', totalItems: 4, finished: 0 }),
    );
    expect(o.deadLetters).toEqual([{ name: w.dlq, count: 1 }]);
    expect(res.body).not.toMatch(/amqp:|redis:\/\//);
  });

  it('GET /api/sagas and /api/sagas/:id: summaries, the record and its timeline; 404, 400', async () => {
    const sagaId = await w.startStuckSaga();
    const list = await get('/api/sagas');
    expect(list.statusCode).toBe(200);
    expect(list.json().items).toContainEqual(
      expect.objectContaining({ sagaId, status: 'stuck', why: expect.stringContaining('charge') }),
    );
    const all = await get('/api/sagas?all=1&limit=5');
    expect(all.statusCode).toBe(200);
    expect(all.json().items.length).toBeLessThanOrEqual(5);
    expect((await get('/api/sagas?status=nope')).statusCode).toBe(400);
    expect((await get('/api/sagas?limit=0')).statusCode).toBe(400);

    const one = await get(`/api/sagas/${sagaId}`);
    expect(one.statusCode).toBe(200);
    const { record, timeline } = one.json();
    expect(record).toMatchObject({ sagaId, status: 'stuck', input: { orderId: sagaId } });
    expect(record.steps.charge.result).toEqual({ chargeId: `ch-${sagaId}`, amount: 42 });
    expect(timeline).toEqual([
      expect.objectContaining({
        step: 'reserve',
        phase: 'run',
        order: 1,
        status: 'completed',
        attempts: 1,
        startedAt: expect.any(String),
        endedAt: expect.any(String),
        durationMs: expect.any(Number),
        idempotencyKey: `${sagaId}:reserve:run`,
      }),
      expect.objectContaining({ step: 'charge', phase: 'run', order: 2, status: 'completed' }),
      expect.objectContaining({
        step: 'ship',
        phase: 'run',
        order: null,
        error: expect.objectContaining({ message: 'no courier available' }),
      }),
      expect.objectContaining({
        step: 'charge',
        phase: 'compensate',
        stuck: true,
        attempts: 1,
        idempotencyKey: `${sagaId}:charge:compensate`,
        error: expect.objectContaining({ message: 'payment provider refused the refund' }),
      }),
    ]);
    // Step times come from the saga record: an attempt's end is not before its start.
    for (const e of timeline as { startedAt?: string; endedAt?: string; durationMs?: number }[]) {
      expect(e.startedAt, 'every step here was attempted').toBeDefined();
      if (e.endedAt) expect(e.durationMs).toBe(Date.parse(e.endedAt) - Date.parse(e.startedAt!));
      if (e.durationMs !== undefined) expect(e.durationMs).toBeGreaterThanOrEqual(0);
    }
    const missing = await get('/api/sagas/no-such-saga');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('BT_ERR_SAGA_NOT_FOUND');
  });

  it('saga data on the page goes through the CLI output redaction (URL passwords, apiKey fields)', async () => {
    // A step whose result carries an API key and whose failure names a URL with a password.
    const leaky = defineSaga('ui-leaky', { input: z.object({ orderId: z.string() }) })
      .step('connect', {
        run: () => ({ apiKey: 'sk-live-4242', region: 'eu' }),
        compensate: () => undefined,
      })
      .step('fail', {
        run: () => {
          throw new Error('cannot reach redis://:s3cret-pw@cache.internal:6379');
        },
        retry: { attempts: 1, initialDelayMs: 0 },
      })
      .build();
    const engine = createSagaEngine({
      store: w.sagaStore,
      logger: pino({ level: 'silent' }),
      sleep: async () => {},
    });
    const sagaId = uniqueName('leaky');
    await engine.start(leaky, { orderId: sagaId }, { sagaId });

    const one = await get(`/api/sagas/${sagaId}`);
    expect(one.statusCode).toBe(200);
    expect(one.body).not.toContain('sk-live-4242');
    expect(one.body).not.toContain('s3cret-pw');
    const { record, timeline } = one.json();
    // The rest of the data is still there, the secrets are replaced where they were.
    expect(record.steps.connect.result).toEqual({ apiKey: '[redacted]', region: 'eu' });
    expect(JSON.stringify(timeline)).toContain('redis://:***@cache.internal:6379');
    const list = await get('/api/sagas?all=1&limit=200');
    expect(list.body).not.toContain('s3cret-pw');
  });

  it('POST resolve: needs a reason, records who/when/why in the saga log, and the saga compensates', async () => {
    const sagaId = await w.startStuckSaga();
    const noReason = await post(`/api/sagas/${sagaId}/resolve`, { step: 'charge' });
    expect(noReason.statusCode).toBe(400);
    const wrongStep = await post(`/api/sagas/${sagaId}/resolve`, { step: 'reserve', reason: 'x' });
    expect(wrongStep.statusCode).toBe(409);
    const res = await post(`/api/sagas/${sagaId}/resolve`, {
      step: 'charge',
      reason: 'refunded by hand, ticket 123',
      operator: 'alice',
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ sagaId, status: 'compensated', by: { operator: 'alice' } });
    const record = await w.sagaStore.get(sagaId);
    expect(record?.status).toBe('compensated');
    expect(record?.steps.charge?.resolution).toMatch(
      /^refunded by hand, ticket 123 \(by alice at \d{4}-\d\d-\d\dT[\d:.]+Z, via backtrack ui\)$/,
    );
    expect(record?.operatorLog).toEqual([
      expect.objectContaining({
        action: 'resolve',
        step: 'charge',
        by: 'alice via backtrack ui',
        reason: expect.stringContaining('refunded by hand, ticket 123'),
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      }),
    ]);
    expect(w.audit).toContainEqual(
      expect.objectContaining({
        action: 'saga.resolve',
        sagaId,
        operator: 'alice',
        note: 'refunded by hand, ticket 123',
      }),
    );
  });

  it('POST retry: a stuck saga runs its failed compensation again; 409 when not stuck', async () => {
    const sagaId = await w.startStuckSaga();
    refunds.work = true;
    const res = await post(`/api/sagas/${sagaId}/retry`, { note: 'provider is back' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      sagaId,
      status: 'compensated',
      by: { operator: 'test-operator' },
    });
    expect(w.audit).toContainEqual(
      expect.objectContaining({ action: 'saga.retry', sagaId, note: 'provider is back' }),
    );
    expect((await w.sagaStore.get(sagaId))?.operatorLog).toEqual([
      expect.objectContaining({
        action: 'retry',
        by: 'test-operator via backtrack ui',
        reason: 'provider is back',
      }),
    ]);
    const again = await post(`/api/sagas/${sagaId}/retry`);
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('BT_ERR_SAGA_INVALID_STATE');
  });

  it('POST cancel: needs a reason; 409 for a saga that is not running; 404 for none', async () => {
    const sagaId = await w.startStuckSaga();
    expect((await post(`/api/sagas/${sagaId}/cancel`, {})).statusCode).toBe(400);
    const stuck = await post(`/api/sagas/${sagaId}/cancel`, { reason: 'customer asked' });
    expect(stuck.statusCode).toBe(409);
    expect((await post('/api/sagas/nope/cancel', { reason: 'x' })).statusCode).toBe(404);
  });

  it('rollback runs: list, detail with the plan, dry-run, resume to done (with SSE progress); 404, 409', async () => {
    const runId = await w.createRun(4);
    const list = await get('/api/rollback/runs');
    expect(list.statusCode).toBe(200);
    expect(list.json().items).toContainEqual(
      expect.objectContaining({ runId, finished: 0, totalItems: 5 }),
    );

    const detail = await get(`/api/rollback/runs/${runId}`);
    expect(detail.statusCode).toBe(200);
    const d = detail.json();
    expect(d).toMatchObject({
      run: { runId, status: 'running' },
      counts: { pending: 5 },
      finished: 0,
    });
    expect(d.plan.items).toHaveLength(4);
    expect(d.plan.items[0]).toMatchObject({
      original: { type: 'stock.reserved' },
      publishes: [{ type: 'stock.released', version: 1 }],
    });
    expect(d.plan.needsPerson).toEqual([
      expect.objectContaining({
        reason: 'irreversible',
        original: expect.objectContaining({ type: 'email.sent' }),
      }),
    ]);

    const dry = await post(`/api/rollback/runs/${runId}/dry-run`);
    expect(dry.statusCode).toBe(200);
    expect(dry.json()).toMatchObject({
      dryRun: true,
      summary: { reversed: 4, needsPerson: 1, published: 0 },
    });
    expect(w.ctx.recording.sent).toHaveLength(0);

    // Follow the run on the event stream, as the page does.
    const events = new AbortController();
    const stream = await fetch(`${w.url}/api/events`, { signal: events.signal });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const seen: string[] = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) {
        seen.push(decoder.decode(chunk));
        if (seen.join('').includes('event: rollback-end')) break;
      }
    })().catch(() => undefined);

    const resume = await post(`/api/rollback/runs/${runId}/resume`, {
      note: 'deploy 2.0 reverted',
    });
    expect(resume.statusCode, resume.body).toBe(202);
    expect(resume.json()).toMatchObject({ runId, started: true });
    await expect
      .poll(async () => (await get(`/api/rollback/runs/${runId}`)).json().run.status)
      .toBe('completed');
    const done = (await get(`/api/rollback/runs/${runId}`)).json();
    expect(done).toMatchObject({ finished: 5, counts: { done: 4, 'needs-person': 1, pending: 0 } });
    await reading;
    events.abort();
    const text = seen.join('');
    expect(text).toContain('event: overview');
    expect(text).toContain('event: rollback-progress');
    expect(text).toContain('event: rollback-end');
    expect(w.audit).toContainEqual(
      expect.objectContaining({ action: 'rollback.resume', runId, note: 'deploy 2.0 reverted' }),
    );

    expect((await get('/api/rollback/runs/no-such-run')).statusCode).toBe(404);
    expect((await post('/api/rollback/runs/no-such-run/resume')).statusCode).toBe(404);
  });

  it('dead letters: browse without consuming (capped preview), redrive one, then all; unknown destination 404', async () => {
    const before = await w.dlqCount();
    w.deadLetter('dl-a');
    w.deadLetter('dl-b');
    await expect.poll(() => w.dlqCount()).toBe(before + 2);
    const list = await get(`/api/dead-letters/${w.dlq}`);
    expect(list.statusCode).toBe(200);
    const items = list.json().items as {
      id: string;
      bodyPreview: string;
      bodyBytes: number;
      truncated: boolean;
      headers: Record<string, string>;
      reasonCode: string;
      code: string;
    }[];
    const a = items.find((i) => i.id === 'dl-a')!;
    expect(a).toMatchObject({
      code: 'BT_ERR_CONSUMER_RETRIES_EXHAUSTED',
      truncated: true,
      headers: expect.objectContaining({ type: 'stock.released' }),
    });
    expect(a.bodyPreview.length).toBe(4096);
    expect(a.bodyBytes).toBeGreaterThan(6000);
    expect(await w.dlqCount()).toBe(before + 2); // nothing consumed

    expect((await post(`/api/dead-letters/${w.dlq}/redrive`, {})).statusCode).toBe(400);
    const one = await post(`/api/dead-letters/${w.dlq}/redrive`, {
      id: 'dl-b',
      note: 'consumer fixed',
    });
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toMatchObject({ redriven: 1, items: [{ id: 'dl-b' }] });
    await expect.poll(() => w.dlqCount()).toBe(before + 1);
    const ids = (await get(`/api/dead-letters/${w.dlq}`))
      .json()
      .items.map((i: { id: string }) => i.id);
    expect(ids).not.toContain('dl-b');
    expect(ids).toContain('dl-a');
    expect(w.audit).toContainEqual(
      expect.objectContaining({
        action: 'dead-letters.redrive',
        id: 'dl-b',
        note: 'consumer fixed',
      }),
    );

    const all = await post(`/api/dead-letters/${w.dlq}/redrive`, { all: true });
    expect(all.statusCode).toBe(200);
    await expect.poll(() => w.dlqCount()).toBe(0);
    expect((await w.channel.checkQueue(w.targetQueue)).messageCount).toBeGreaterThanOrEqual(2);

    expect((await get('/api/dead-letters')).json()).toEqual({ items: [{ name: w.dlq, count: 0 }] });
    expect((await get('/api/dead-letters/some-other-queue')).statusCode).toBe(404);
    expect(
      (await post('/api/dead-letters/some-other-queue/redrive', { all: true })).statusCode,
    ).toBe(404);
  });

  it('GET /api/schemas: types, versions and the verdict against the snapshot', async () => {
    const res = await get('/api/schemas?required=FULL');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.required).toBe('FULL');
    expect(body.types).toContainEqual({
      type: 'stock.reserved',
      versions: [1, 2],
      defaultVersion: 1,
    });
    expect(body.check).toMatchObject({ ok: true });
    expect((await get('/api/schemas?required=SIDEWAYS')).statusCode).toBe(400);
  });

  it('refuses an action from another origin, another site, or without the CSRF header', async () => {
    const sagaId = await w.startStuckSaga();
    const body = { step: 'charge', reason: 'x' };
    const url = `/api/sagas/${sagaId}/resolve`;
    const crossOrigin = await post(url, body, {
      origin: 'http://evil.example',
      'sec-fetch-site': 'cross-site',
    });
    expect(crossOrigin.statusCode).toBe(403);
    expect(crossOrigin.json().error.code).toBe('BT_ERR_UI_CSRF');
    const otherOrigin = await post(url, body, {
      origin: 'http://evil.example',
      'sec-fetch-site': '',
    });
    expect(otherOrigin.statusCode).toBe(403);
    const noCsrf = await post(url, body, { 'x-backtrack-csrf': '' });
    expect(noCsrf.statusCode).toBe(403);
    const wrongCsrf = await post(url, body, { 'x-backtrack-csrf': 'guess' });
    expect(wrongCsrf.statusCode).toBe(403);
    // A Host that is not the console's (DNS rebinding) is refused, reads included.
    expect((await get('/api/overview', { host: 'evil.example' })).statusCode).toBe(421);
    expect((await w.sagaStore.get(sagaId))?.status).toBe('stuck');
  });
});

describe.skipIf(!redisInfo.available || !rabbitInfo.available)('backtrack ui: with a token', () => {
  let w: World;
  let host: string;
  beforeAll(async () => {
    w = await createWorld(redisInfo, rabbitInfo, { token: 'test-token-0123456789abcdef' });
    host = new URL(w.url).host;
  });
  afterAll(async () => w?.close());

  it('refuses reads and actions without the token, and accepts them with it', async () => {
    const sagaId = await w.startStuckSaga();
    const inject = (method: 'GET' | 'POST', url: string, headers: Record<string, string> = {}) =>
      w.server.app.inject({
        method,
        url,
        headers: { host, ...headers },
        ...(method === 'POST' ? { payload: '{"step":"charge","reason":"x"}' } : {}),
      });
    expect((await inject('GET', '/api/overview')).statusCode).toBe(401);
    expect(
      (await inject('GET', '/api/session', { authorization: 'Bearer wrong' })).statusCode,
    ).toBe(401);
    const session = await inject('GET', '/api/session', {
      authorization: 'Bearer test-token-0123456789abcdef',
    });
    expect(session.statusCode).toBe(200);
    expect(session.json().tokenRequired).toBe(true);
    const csrf = session.json().csrf as string;
    const noToken = await inject('POST', `/api/sagas/${sagaId}/resolve`, {
      'content-type': 'application/json',
      'x-backtrack-csrf': csrf,
    });
    expect(noToken.statusCode).toBe(401);
    expect((await w.sagaStore.get(sagaId))?.status).toBe('stuck');
    const ok = await inject('POST', `/api/sagas/${sagaId}/resolve`, {
      'content-type': 'application/json',
      'x-backtrack-csrf': csrf,
      authorization: 'Bearer test-token-0123456789abcdef',
    });
    expect(ok.statusCode, ok.body).toBe(200);
    // The page itself loads without the token (it carries no data); the API does not.
    expect((await inject('GET', '/')).statusCode).toBe(200);
    expect((await fetch(`${w.url}/api/events`)).status).toBe(401);
  });

  it('generates a token when bound beyond loopback', async () => {
    const { createConsole } = await import('../../src/ui/server.js');
    const previous = process.env.BACKTRACK_UI_TOKEN;
    delete process.env.BACKTRACK_UI_TOKEN;
    try {
      const open = await createConsole(w.ctx, { host: '0.0.0.0', port: 0 });
      expect(open.token).toMatch(/^[\w-]{30,}$/);
      const loop = await createConsole(w.ctx, { host: '127.0.0.1', port: 0 });
      expect(loop.token).toBeUndefined();
      await open.close();
      await loop.close();
    } finally {
      if (previous !== undefined) process.env.BACKTRACK_UI_TOKEN = previous;
    }
  });
});
