/**
 * `backtrack ui`: a small web console over the same operations the CLI commands call
 * (src/operations). JSON API under /api, live updates as server-sent events, static pages from
 * the package's `static/` folder.
 */
import { readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { pino, type Logger } from 'pino';
import {
  BacktrackError,
  planRollbackPages,
  type RollbackPlan,
  redactionLoggerOptions,
  redactSecrets,
  snapshotRegistry,
  type CompatibilityLevel,
  type RollbackProgressEvent,
  type RollbackRunResult,
  type SagaRecord,
} from '@backtrack/core';
import { redact, messageOf, type CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import {
  browseDeadLetters,
  deadLetterDetail,
  redriveDeadLetterQueue,
  withAmqp,
} from '../operations/deadLetters.js';
import { getRunPlan, listRuns, resumeRun, runStatus } from '../operations/rollback.js';
import {
  cancelSaga,
  operatorName,
  countSagas,
  getSaga,
  listSagas,
  resolveSaga,
  retrySaga,
} from '../operations/sagas.js';
import { checkSchemas } from '../operations/schemas.js';
import { checkRequest, isLoopback, newSecret, type Guard } from './security.js';
import { sagaSummary, sagaTimeline } from './views.js';

const STATIC_DIR = fileURLToPath(new URL('../../static/', import.meta.url));
const STATIC_FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};
const KAFKA_COUNT_MS = 30_000;
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export interface ConsoleOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 7420; 0 picks a free port */
  port?: number;
  /** Required (generated when absent) when `host` is not loopback; optional on loopback. */
  token?: string;
  /** Dead-letter queues (RabbitMQ) or topics (Kafka) the console shows. */
  deadLetters?: string[];
  /** How often the overview is pushed to open pages, in ms. @default 2000 */
  pollMs?: number;
  /** Items per broker call when the console resumes a rollback run. @default runRollback's */
  batchSize?: number;
  /** Bytes of a dead letter's body shown. @default 4096 */
  previewBytes?: number;
  /** Who acts when the page does not say (the operator's name). @default the OS user */
  operator?: string;
  /** The audit log of actions. @default pino at info on stderr */
  logger?: Logger;
}

export interface ConsoleServer {
  app: FastifyInstance;
  /** The token the API requires, if any (print it for the operator). */
  token?: string;
  url?: string;
  listen(): Promise<string>;
  close(): Promise<void>;
}

interface ActionBody {
  operator?: string;
  note?: string;
  reason?: string;
  step?: string;
  id?: string;
}

const httpStatus = (error: unknown): number => {
  if (error instanceof CliError && /_NOT_FOUND$/.test(error.code)) return 404;
  if (error instanceof CliError)
    return error.exitCode === EXIT.Usage ? 400 : error.exitCode === EXIT.Locked ? 409 : 502;
  if (error instanceof BacktrackError) {
    if (/_NOT_FOUND$/.test(error.code)) return 404;
    if (/INVALID_STATE|_CONFLICT|_LOCKED|LEASE_HELD/.test(error.code)) return 409;
    if (/_CONFIG(_INVALID)?$|_QUERY_INVALID$|_SNAPSHOT_INVALID$/.test(error.code)) return 400;
  }
  return 500;
};

/** Builds the console (not listening yet). */
export async function createConsole(
  ctx: CliContext,
  options: ConsoleOptions = {},
): Promise<ConsoleServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  const token =
    options.token ?? process.env.BACKTRACK_UI_TOKEN ?? (loopback ? undefined : newSecret());
  const guard: Guard = {
    token,
    csrf: newSecret(),
    hosts: loopback
      ? new Set([host.toLowerCase().replace(/^\[|\]$/g, ''), '127.0.0.1', 'localhost', '::1'])
      : undefined,
  };
  const audit =
    options.logger ??
    pino(
      {
        name: 'backtrack-ui',
        level: process.env.BACKTRACK_UI_LOG_LEVEL ?? 'info',
        ...redactionLoggerOptions(),
      },
      pino.destination(2),
    );
  const deadLetters = [...new Set(options.deadLetters ?? [])];
  const pollMs = options.pollMs ?? 2_000;
  const previewBytes = options.previewBytes ?? 4_096;
  const defaultOperator = options.operator ?? safeUser();

  // forceCloseConnections: open event streams must not keep close() (Ctrl-C) waiting.
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true });
  const listeners = new Set<(event: string, data: unknown) => void>();
  const broadcast = (event: string, data: unknown) => {
    for (const send of listeners) send(event, data);
  };
  // One overview computation per poll, whatever the number of open pages.
  let lastOverview: unknown;
  let polling: NodeJS.Timeout | undefined;
  let busy = false;
  const poll = async () => {
    if (busy || listeners.size === 0) return;
    busy = true;
    try {
      lastOverview = await overview();
      broadcast('overview', lastOverview);
    } catch (error) {
      broadcast('error', { message: redact(messageOf(error)) });
    } finally {
      busy = false;
    }
  };
  const startPolling = () => {
    polling ??= setInterval(() => void poll(), pollMs);
  };
  const stopPolling = () => {
    clearInterval(polling);
    polling = undefined;
    lastOverview = undefined;
  };
  /** Runs this console started and has not seen end, with their last progress. */
  const active = new Map<string, RollbackProgressEvent | { runId: string; started: true }>();

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('referrer-policy', 'no-referrer');
    void reply.header('x-frame-options', 'DENY');
    void reply.header('cache-control', 'no-store');
    if (!checkRequest(guard, request, reply)) return reply;
  });

  // Saga inputs, step results, errors and dead-letter previews are application data: they go
  // through the same redaction as `backtrack ... --json` (a URL's password, `apiKey` fields), so
  // the page never shows what the CLI would hide.
  app.addHook('preSerialization', async (_request, _reply, payload) => redactSecrets(payload));

  app.setErrorHandler((error, _request, reply) => {
    const status =
      (error as { statusCode?: number }).statusCode && !(error instanceof BacktrackError)
        ? (error as { statusCode: number }).statusCode
        : httpStatus(error);
    const code =
      error instanceof CliError || error instanceof BacktrackError
        ? error.code
        : status < 500
          ? 'BT_ERR_UI_REQUEST'
          : 'BT_ERR_UI';
    // Errors can name a connection URL: never its password on the page.
    void reply.code(status).send({ error: { code, message: redact(messageOf(error)) } });
  });

  const action = (request: FastifyRequest, what: string, fields: Record<string, unknown>) => {
    const body = (request.body ?? {}) as ActionBody;
    const operator = clean(body.operator) || defaultOperator;
    const entry = { action: what, operator, ...fields, remote: request.ip };
    audit.info(entry, `console action: ${what}`);
    return { operator, at: new Date().toISOString() };
  };

  // --- static pages
  for (const [route, file] of Object.entries(STATIC_FILES)) {
    app.get(route, async (_request, reply) => {
      const ext = file.split('.').pop()!;
      const body = await readFile(STATIC_DIR + file);
      return reply
        .type(CONTENT_TYPES[ext]!)
        .header(
          'content-security-policy',
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        .send(body);
    });
  }

  // --- session: what the page needs to know (never a connection URL)
  app.get('/api/session', async () => ({
    csrf: guard.csrf,
    tokenRequired: Boolean(token),
    operator: defaultOperator,
    transport: transportKind(ctx),
    deadLetters,
    sagaDefinitions: (ctx.config.sagas ?? []).map((d) => ({ name: d.name, version: d.version })),
    pollMs,
  }));

  // --- overview
  const overview = async () => {
    const [sagas, attention, runs, dl] = await Promise.all([
      countSagas(ctx),
      listSagas(ctx, { limit: 20 }),
      runsWithProgress(),
      deadLetterCounts(),
    ]);
    return {
      at: new Date().toISOString(),
      sagas,
      attention: attention.map(sagaSummary),
      runs,
      deadLetters: dl,
    };
  };

  const runsWithProgress = async () => {
    const runs = await listRuns(ctx, 20);
    return Promise.all(
      runs.map(async (run) => {
        const { counts } = await runStatus(ctx, run.runId);
        const finished = run.totalItems - (counts.pending ?? 0) - (counts.publishing ?? 0);
        return { ...run, counts, finished, activeHere: active.has(run.runId) };
      }),
    );
  };

  const deadLetterCounts = async () =>
    Promise.all(
      deadLetters.map(async (name) => {
        try {
          return { name, count: await countDeadLetters(name) };
        } catch (error) {
          return { name, count: null, error: redact(messageOf(error)) };
        }
      }),
    );

  const countDeadLetters = async (name: string): Promise<number> => {
    if (transportKind(ctx) === 'rabbitmq')
      // The queue's own count: a browse would touch every message.
      return withAmqp(ctx, async (model) => {
        const channel = await model.createChannel();
        channel.on('error', () => undefined);
        try {
          return (await channel.checkQueue(name)).messageCount;
        } finally {
          await channel.close().catch(() => undefined);
        }
      });
    // Kafka: a read-only pass over the topic, so at most every KAFKA_COUNT_MS.
    const cached = kafkaCounts.get(name);
    if (cached && Date.now() - cached.at < KAFKA_COUNT_MS) return cached.count;
    const count = (await browseDeadLetters(ctx, { from: name, limit: 1_000 })).length;
    kafkaCounts.set(name, { at: Date.now(), count });
    return count;
  };
  const kafkaCounts = new Map<string, { at: number; count: number }>();

  app.get('/api/overview', overview);

  // --- sagas
  app.get('/api/sagas', async (request) => {
    const q = request.query as { status?: string; all?: string; limit?: string };
    const limit = positive(q.limit, 50, 500);
    const found = await listSagas(ctx, {
      status: q.status || undefined,
      all: q.all === 'true' || q.all === '1',
      limit,
    });
    return { items: found.map(sagaSummary) };
  });

  app.get('/api/sagas/:id', async (request) => {
    const { id } = request.params as { id: string };
    const record = await getSaga(ctx, id);
    return { record: publicRecord(record), timeline: sagaTimeline(record) };
  });

  app.post('/api/sagas/:id/retry', async (request) => {
    const { id } = request.params as { id: string };
    const body = (request.body ?? {}) as ActionBody;
    const who = action(request, 'saga.retry', { sagaId: id, note: clean(body.note) });
    const result = await retrySaga(ctx, id, {
      by: operatorName('ui', who.operator),
      ...(clean(body.note) ? { reason: clean(body.note) } : {}),
    });
    void poll();
    return { sagaId: id, status: result.status, by: who };
  });

  app.post('/api/sagas/:id/resolve', async (request) => {
    const { id } = request.params as { id: string };
    const body = (request.body ?? {}) as ActionBody;
    const reason = clean(body.reason);
    const step = clean(body.step);
    if (!reason) throw new CliError('resolve needs a reason (kept in the saga log)', EXIT.Usage);
    if (!step) throw new CliError('resolve needs the stuck step', EXIT.Usage);
    const who = action(request, 'saga.resolve', { sagaId: id, step, note: reason });
    const result = await resolveSaga(
      ctx,
      id,
      step,
      stamp(reason, who),
      operatorName('ui', who.operator),
    );
    void poll();
    return { sagaId: id, status: result.status, by: who };
  });

  app.post('/api/sagas/:id/cancel', async (request) => {
    const { id } = request.params as { id: string };
    const body = (request.body ?? {}) as ActionBody;
    const reason = clean(body.reason);
    if (!reason) throw new CliError('cancel needs a reason (kept in the saga log)', EXIT.Usage);
    const who = action(request, 'saga.cancel', { sagaId: id, note: reason });
    const result = await cancelSaga(ctx, id, stamp(reason, who), operatorName('ui', who.operator));
    void poll();
    return { sagaId: id, status: result.status, by: who };
  });

  // --- rollback runs
  app.get('/api/rollback/runs', async () => ({ items: await runsWithProgress() }));

  app.get('/api/rollback/runs/:id', async (request) => {
    const { id } = request.params as { id: string };
    const status = await runStatus(ctx, id);
    // A run's stored plan is its summary: the first page of its items is planned from the journal.
    const summary = await getRunPlan(ctx, id);
    let plan: Partial<Pick<RollbackPlan, 'items' | 'sagas' | 'needsPerson'>> = {};
    if (ctx.config.registry) {
      const pages = planRollbackPages(
        summary,
        {
          journal: await ctx.journal(),
          registry: ctx.config.registry,
          compensations: ctx.config.compensations,
        },
        { pageSize: 200 },
      );
      plan = (await pages.next()).value ?? {};
      await pages.return(undefined);
    }
    const finished =
      status.run.totalItems - (status.counts.pending ?? 0) - (status.counts.publishing ?? 0);
    return {
      ...status,
      finished,
      activeHere: active.has(id),
      plan: {
        planId: summary.planId,
        strategy: summary.strategy,
        window: summary.window,
        counts: summary.counts,
        items: (plan.items ?? []).slice(0, 200).map((i) => ({
          itemId: i.itemId,
          original: i.original,
          publishes: i.messages.map((m) => ({ id: m.id, type: m.type, version: m.schemaVersion })),
        })),
        sagas: (plan.sagas ?? []).map((s) => ({
          itemId: s.itemId,
          sagaId: s.sagaId,
          effects: s.effects.length,
        })),
        needsPerson: (plan.needsPerson ?? []).map((n) => ({
          itemId: n.itemId,
          original: n.original,
          reason: n.reason,
          message: n.message,
        })),
      },
    };
  });

  app.post('/api/rollback/runs/:id/dry-run', async (request) => {
    const { id } = request.params as { id: string };
    action(request, 'rollback.dry-run', { runId: id });
    const result = await resumeRun(ctx, id, { dryRun: true });
    return resultView(result);
  });

  app.post('/api/rollback/runs/:id/resume', async (request, reply) => {
    const { id } = request.params as { id: string };
    const body = (request.body ?? {}) as ActionBody;
    if (active.has(id))
      throw new CliError(`run ${id} is already being resumed by this console`, EXIT.Locked);
    await getRunPlan(ctx, id); // 404 before anything starts
    const who = action(request, 'rollback.resume', { runId: id, note: clean(body.note) });
    active.set(id, { runId: id, started: true });
    // Runs in the background: the page follows it through the event stream.
    void resumeRun(ctx, id, {
      batchSize: options.batchSize,
      onProgress: (event) => {
        active.set(id, event);
        broadcast('rollback-progress', event);
      },
    })
      .then((result) => {
        audit.info(
          { action: 'rollback.resume', runId: id, status: result.status },
          'rollback run ended',
        );
        broadcast('rollback-end', resultView(result));
      })
      .catch((error: unknown) => {
        audit.warn(
          { action: 'rollback.resume', runId: id, err: redact(messageOf(error)) },
          'rollback run stopped',
        );
        broadcast('rollback-end', { runId: id, error: redact(messageOf(error)) });
      })
      .finally(() => active.delete(id));
    return reply.code(202).send({ runId: id, started: true, by: who });
  });

  // --- dead letters
  const requireDestination = (name: string) => {
    if (!deadLetters.includes(name)) {
      throw new BacktrackErrorLike(
        `dead-letter destination "${name}" is not one this console was started with (--dead-letters)`,
      );
    }
  };

  app.get('/api/dead-letters', async () => ({ items: await deadLetterCounts() }));

  app.get('/api/dead-letters/:name', async (request) => {
    const { name } = request.params as { name: string };
    requireDestination(name);
    const q = request.query as { limit?: string; code?: string };
    const found = await browseDeadLetters(ctx, {
      from: name,
      code: q.code || undefined,
      limit: positive(q.limit, 50, 500),
    });
    return { name, previewBytes, items: found.map((d) => deadLetterDetail(d, previewBytes)) };
  });

  app.post('/api/dead-letters/:name/redrive', async (request) => {
    const { name } = request.params as { name: string };
    requireDestination(name);
    const body = (request.body ?? {}) as ActionBody & { all?: boolean };
    const id = clean(body.id);
    if (!id && body.all !== true)
      throw new CliError('redrive needs the dead letter `id`, or `all: true`', EXIT.Usage);
    action(request, 'dead-letters.redrive', { from: name, id, all: !id, note: clean(body.note) });
    const result = await redriveDeadLetterQueue(ctx, {
      from: name,
      id: id || undefined,
      limit: id ? 1 : 10_000,
    });
    void poll();
    return result;
  });

  // --- schemas
  app.get('/api/schemas', async (request) => {
    const q = request.query as { required?: string; transitive?: string };
    const required = (q.required ?? 'BACKWARD').toUpperCase();
    if (!['BACKWARD', 'FORWARD', 'FULL', 'NONE'].includes(required))
      throw new CliError('required must be BACKWARD, FORWARD, FULL or NONE', EXIT.Usage);
    const registry = ctx.config.registry;
    const types = registry
      ? Object.entries(snapshotRegistry(registry).events).map(([type, e]) => ({
          type,
          versions: Object.keys(e.versions).map(Number),
          defaultVersion: registry.defaultSchemaVersion(type),
        }))
      : [];
    let check: unknown;
    try {
      const { report } = await checkSchemas(ctx, {
        required: required as CompatibilityLevel,
        transitive: q.transitive === 'true',
      });
      check = report;
    } catch (error) {
      check = {
        error: { code: (error as { code?: string }).code, message: redact(messageOf(error)) },
      };
    }
    return { required, types, check };
  });

  // --- live updates
  app.get('/api/events', (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
    });
    const send = (event: string, data: unknown) => {
      res.write(`event: ${event}\ndata: ${JSON.stringify(redactSecrets(data))}\n\n`);
    };
    listeners.add(send);
    startPolling();
    // The newest overview at once, then the shared poll's.
    if (lastOverview) send('overview', lastOverview);
    else void poll();
    request.raw.on('close', () => {
      listeners.delete(send);
      if (listeners.size === 0) stopPolling();
    });
  });

  let url: string | undefined;
  const server: ConsoleServer = {
    app,
    token,
    async listen() {
      const address = await app.listen({ host, port: options.port ?? 7420 });
      const port = new URL(address).port;
      url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      server.url = url;
      return url;
    },
    async close() {
      stopPolling();
      await app.close();
    },
  };
  return server;
}

/** Thrown for a dead-letter destination the console was not given: a 404. */
class BacktrackErrorLike extends CliError {
  constructor(message: string) {
    super(message, EXIT.Error, 'BT_ERR_UI_NOT_FOUND');
  }
}

function transportKind(ctx: CliContext): string | undefined {
  try {
    return ctx.transportKind;
  } catch {
    return undefined;
  }
}

function publicRecord(record: SagaRecord): SagaRecord {
  // The lease token fences writers: nothing a page needs.
  if (!record.lease) return record;
  const { token: _token, ...lease } = record.lease;
  return { ...record, lease: lease as SagaRecord['lease'] };
}

function resultView(result: RollbackRunResult) {
  return {
    runId: result.runId,
    planId: result.planId,
    status: result.status,
    dryRun: result.dryRun,
    summary: result.summary,
    failed: result.failed,
    needsPerson: result.needsPerson,
  };
}

/** `why (by who at when, via backtrack ui)`: the saga log keeps who, when and why. */
function stamp(reason: string, who: { operator: string; at: string }): string {
  return `${reason} (by ${who.operator} at ${who.at}, via backtrack ui)`;
}

function clean(value: unknown): string {
  return typeof value === 'string' ? value.trim().slice(0, 2_000) : '';
}

function positive(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CliError(`limit must be a positive integer, got "${value}"`, EXIT.Usage);
  return Math.min(n, max);
}

function safeUser(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return 'operator';
  }
}
