import { createHash } from 'node:crypto';
import { decodeEnvelope, encodeEnvelope } from '../envelope/codec.js';
import { createEnvelope, withDataschemaVersion } from '../envelope/envelope.js';
import type { Envelope } from '../envelope/types.js';
import { BacktrackError } from '../errors/BacktrackError.js';
import type { Journal, JournalRecord } from '../journal/Journal.js';
import { toTimeMs } from '../journal/query.js';
import { deterministicId } from '../publisher/deterministicId.js';
import type { EventRegistry } from '../schema/EventRegistry.js';
import type { CompensatingEvent, CompensationRegistry } from './compensations.js';
import { RollbackConfigError, RollbackPlanTooLargeError } from './errors.js';

/** How a rollback treats the effects of a bad version. */
export const RollbackStrategy = {
  /** Publish the compensating events of every effect, newest first. */
  Compensate: 'compensate',
  /** Re-publish every effect re-encoded in the schema version the (rolled back) consumers read. */
  Replay: 'replay',
} as const;
export type RollbackStrategy = (typeof RollbackStrategy)[keyof typeof RollbackStrategy];

/** Options of {@link planRollback}. */
export interface PlanRollbackOptions {
  /** The service whose deploy is rolled back. */
  service: string;
  /** The bad deploy's version string (as given to the publisher). */
  version: string;
  /** Only effects at or after this time. @default the start of the journal's retention window */
  since?: Date | string | number;
  /** Only effects at or before this time. @default now (frozen into the plan) */
  until?: Date | string | number;
  strategy: RollbackStrategy;
  /**
   * Replay only: the schema version to write per event type (the version the restored consumers
   * read). Types not listed are replayed in the version they were written in.
   */
  targetVersions?: Readonly<Record<string, number>>;
  /** Only these event types. @default every type */
  types?: readonly string[];
  /**
   * Refuse to plan more effects than this (a plan is held in memory and stored whole).
   * @default 100_000
   */
  maxEffects?: number;
}

/** Collaborators of {@link planRollback}. */
export interface PlanRollbackDependencies {
  journal: Journal;
  registry: EventRegistry;
  /** Required for the `compensate` strategy. */
  compensations?: CompensationRegistry;
  /** @default () => new Date() */
  now?: () => Date;
}

/** The journaled effect a plan entry is about. */
export interface EffectRef {
  id: string;
  type: string;
  schemaVersion: number;
  seq: number;
  time: string;
  key?: string;
  sagaId?: string;
}

/** A message a run will publish, JSON-serialisable (the body in base64). */
export interface PlannedMessage {
  /** The new envelope id: deterministic, so a republish is deduplicated downstream. */
  id: string;
  type: string;
  schemaVersion: number;
  topic: string;
  key?: string;
  headers: Record<string, string>;
  /** Body bytes, base64. */
  body: string;
  /** The decoded data, for people reading the plan. */
  data: unknown;
}

/** One effect to reverse or replay: its messages are published together, in order. */
export interface RollbackPlanItem {
  /** Stable id of the item inside its plan (progress is tracked per item). */
  itemId: string;
  action: 'compensate' | 'replay';
  original: EffectRef;
  messages: PlannedMessage[];
}

/** A saga whose effects go back through the saga engine's compensation, not one by one. */
export interface SagaRollbackItem {
  itemId: string;
  sagaId: string;
  /** The saga's effects of the bad version, newest first. */
  effects: EffectRef[];
}

/** Why a person must look at an effect. */
export const NeedsPersonReason = {
  /** The type is declared irreversible. */
  Irreversible: 'irreversible',
  /** No compensation is registered for the type. */
  NoCompensation: 'no-compensation',
  /** The journaled message cannot be decoded or read with the registry. */
  Unreadable: 'unreadable',
  /** The reverser threw, or returned an event that fails its schema. */
  CompensationFailed: 'compensation-failed',
  /** Replay: the data cannot be converted to the target version (missing or failing transform). */
  NotConvertible: 'not-convertible',
} as const;
export type NeedsPersonReason = (typeof NeedsPersonReason)[keyof typeof NeedsPersonReason];

export interface NeedsPersonItem {
  itemId: string;
  original: EffectRef;
  reason: NeedsPersonReason;
  /** Human-readable explanation (the irreversible declaration's reason, or the error message). */
  message: string;
  code?: string;
}

/** The result of {@link planRollback}: JSON-serialisable, so it can be saved, printed and stored. */
export interface RollbackPlan {
  /**
   * Hash of the service, version, strategy, target versions and every planned id (not of the
   * window): plans of the same effects have equal ids, whenever they were made.
   */
  planId: string;
  createdAt: string;
  service: string;
  version: string;
  strategy: RollbackStrategy;
  /** The window actually used (until is frozen at planning time). */
  window: { since?: string; until: string };
  targetVersions?: Record<string, number>;
  types?: string[];
  /** Effects to compensate or replay one by one, newest first (compensate) or oldest first (replay). */
  items: RollbackPlanItem[];
  /** Sagas to compensate through the saga engine (compensate strategy only), newest first. */
  sagas: SagaRollbackItem[];
  /** Effects a person must handle. */
  needsPerson: NeedsPersonItem[];
  /** Effects whose compensation is "nothing to do" (the reverser returned no event). */
  skipped: { itemId: string; original: EffectRef; message: string }[];
  counts: {
    effects: number;
    items: number;
    messages: number;
    sagas: number;
    needsPerson: number;
    skipped: number;
  };
}

/** The `producerversion` (and journal version) of messages a rollback publishes. */
export function rollbackVersion(planId: string): string {
  return `rollback:${planId}`;
}

/**
 * Reads the journal and plans the rollback of one deploy: every effect `service@version`
 * published in the window becomes
 * - with `compensate`: the compensating events from the {@link CompensationRegistry}, newest
 *   effect first, each with a deterministic id (`deterministicId(original id, 'compensate', n)`)
 *   and `causationid` = the original id. Effects with a saga id are grouped per saga for the saga
 *   engine instead. Irreversible or unknown types go to `needsPerson`.
 * - with `replay`: the same event, converted (usually downcast) to `targetVersions[type]`, with a
 *   deterministic new id (`deterministicId(original id, 'replay', version)`) and `causationid` =
 *   the original id, oldest first (publish order).
 *
 * Nothing is published; print the plan for a dry run, give it to {@link runRollback} to apply it.
 * Planning is deterministic: the same journal content and options give the same plan and planId.
 */
export async function planRollback(
  options: PlanRollbackOptions,
  dependencies: PlanRollbackDependencies,
): Promise<RollbackPlan> {
  const window = resolvePlanWindow(options, dependencies);
  const state: PlanState = {
    items: [],
    sagas: new Map(),
    needsPerson: [],
    skipped: [],
    pending: [],
    effects: 0,
  };
  for await (const record of journalEffects(dependencies.journal, window)) {
    if (window.types && !window.types.has(record.type)) continue;
    state.effects++;
    if (state.effects > window.maxEffects) {
      const { service, version, since, until } = window;
      throw new RollbackPlanTooLargeError(window.maxEffects, { service, version, since, until });
    }
    planEffect(record, window, dependencies, state);
  }
  return assemblePlan(options, window, state);
}

/** The plan's validated options: what to read from the journal and how to undo it. */
interface PlanWindow {
  service: string;
  version: string;
  strategy: RollbackStrategy;
  since: string | undefined;
  until: string;
  types: Set<string> | undefined;
  /** Replay: the version each event type is written in (default: the version it was written in). */
  targetVersions: Record<string, number> | undefined;
  maxEffects: number;
  now: Date;
}

/** What planning has found so far. Messages are encoded once the plan id is known. */
interface PlanState {
  items: RollbackPlanItem[];
  sagas: Map<string, SagaRollbackItem>;
  needsPerson: NeedsPersonItem[];
  skipped: RollbackPlan['skipped'];
  pending: {
    item: RollbackPlanItem;
    outgoing: { envelope: Envelope<unknown>; topic: string; key?: string }[];
  }[];
  effects: number;
}

/** Checks the options once (each bad field named) and fixes the window. */
function resolvePlanWindow(
  options: PlanRollbackOptions,
  dependencies: PlanRollbackDependencies,
): PlanWindow {
  const { service, version, strategy } = options;
  for (const field of ['service', 'version'] as const) {
    if (typeof options[field] !== 'string' || options[field].length === 0) {
      throw new RollbackConfigError(field, 'must be a non-empty string');
    }
  }
  if (strategy !== 'compensate' && strategy !== 'replay') {
    throw new RollbackConfigError(
      'strategy',
      `must be compensate or replay, got ${String(strategy)}`,
      strategy,
    );
  }
  if (strategy === 'compensate' && !dependencies.compensations) {
    throw new RollbackConfigError(
      'compensations',
      'the compensate strategy needs a compensation registry',
    );
  }
  const { registry } = dependencies;
  for (const [type, v] of Object.entries(options.targetVersions ?? {})) {
    if (!registry.has(type) || !registry.get(type).hasVersion(v)) {
      throw new RollbackConfigError(
        'targetVersions',
        `target version ${v} of "${type}" is not in the registry`,
        v,
        { details: { type, version: v } },
      );
    }
  }
  const now = (dependencies.now ?? (() => new Date()))();
  return {
    service,
    version,
    strategy,
    until: new Date(
      options.until === undefined ? now : toTimeMs(options.until, 'until'),
    ).toISOString(),
    since:
      options.since === undefined
        ? undefined
        : new Date(toTimeMs(options.since, 'since')).toISOString(),
    types: options.types ? new Set(options.types) : undefined,
    targetVersions: options.targetVersions,
    maxEffects: options.maxEffects ?? 100_000,
    now,
  };
}

/** The journal's records of the window, page by page: newest first to compensate, oldest to replay. */
async function* journalEffects(journal: Journal, w: PlanWindow): AsyncGenerator<JournalRecord> {
  let cursor: string | undefined;
  do {
    const page = await journal.query({
      service: w.service,
      version: w.version,
      since: w.since,
      until: w.until,
      direction: w.strategy === 'compensate' ? 'backward' : 'forward',
      cursor,
      limit: 500,
    });
    cursor = page.nextCursor;
    yield* page.items;
  } while (cursor);
}

/** One journaled effect: grouped under its saga, or decoded and planned as a replay or a compensation. */
function planEffect(
  record: JournalRecord,
  w: PlanWindow,
  dependencies: PlanRollbackDependencies,
  state: PlanState,
): void {
  const ref = toRef(record);
  if (w.strategy === 'compensate' && record.sagaId !== undefined) {
    const itemId = `saga:${record.sagaId}`;
    const saga = state.sagas.get(record.sagaId) ?? { itemId, sagaId: record.sagaId, effects: [] };
    saga.effects.push(ref);
    state.sagas.set(record.sagaId, saga);
    return;
  }
  const person = (reason: NeedsPersonReason, message: string, code?: string) =>
    state.needsPerson.push({
      itemId: `person:${record.id}`,
      original: ref,
      reason,
      message,
      ...(code ? { code } : {}),
    });
  const { registry } = dependencies;
  let envelope: Envelope<unknown>;
  let data: unknown;
  try {
    envelope = decodeEnvelope(record.message, {
      defaultSchemaVersion: (type) => registry.defaultSchemaVersion(type),
    });
    data = registry.read(envelope, w.strategy === 'replay' ? { as: envelope.schemaversion } : {});
  } catch (error) {
    person(NeedsPersonReason.Unreadable, errorMessage(error), errorCode(error));
    return;
  }
  if (w.strategy === 'replay') planReplay(record, ref, envelope, data, w, registry, state, person);
  else planCompensation(record, ref, envelope, data, w, dependencies, state, person);
}

type Person = (reason: NeedsPersonReason, message: string, code?: string) => void;

/** Replay: the effect again, converted to its target version, with a deterministic new id. */
function planReplay(
  record: JournalRecord,
  ref: EffectRef,
  envelope: Envelope<unknown>,
  data: unknown,
  w: PlanWindow,
  registry: EventRegistry,
  state: PlanState,
  person: Person,
): void {
  const target = w.targetVersions?.[record.type] ?? envelope.schemaversion;
  let converted: unknown;
  try {
    converted = registry.get(record.type).read(data, envelope.schemaversion, target);
  } catch (error) {
    person(NeedsPersonReason.NotConvertible, errorMessage(error), errorCode(error));
    return;
  }
  const next = createEnvelope({
    type: envelope.type,
    source: envelope.source,
    schemaversion: target,
    data: converted,
    id: deterministicId(record.id, 'replay', String(target)),
    time: envelope.time,
    causationid: record.id,
    correlationid: envelope.correlationid,
    sagaid: envelope.sagaid,
    producerservice: w.service,
    partitionkey: envelope.partitionkey,
    // Every other attribute travels unchanged (a versioned dataschema names the target).
    subject: envelope.subject,
    dataschema: withDataschemaVersion(envelope.dataschema, envelope.schemaversion, target),
    extensions: envelope.extensions,
  });
  const item: RollbackPlanItem = {
    itemId: `replay:${record.id}`,
    action: 'replay',
    original: ref,
    messages: [],
  };
  state.items.push(item);
  state.pending.push({
    item,
    outgoing: [{ envelope: next, topic: record.topic, key: record.key }],
  });
}

/** Compensate: the events the registered compensation returns for the effect. */
function planCompensation(
  record: JournalRecord,
  ref: EffectRef,
  envelope: Envelope<unknown>,
  data: unknown,
  w: PlanWindow,
  dependencies: PlanRollbackDependencies,
  state: PlanState,
  person: Person,
): void {
  const { registry } = dependencies;
  const entry = dependencies.compensations!.get(record.type);
  if (!entry) {
    person(NeedsPersonReason.NoCompensation, `no compensation registered for "${record.type}"`);
    return;
  }
  if (entry.kind === 'irreversible') {
    person(NeedsPersonReason.Irreversible, entry.reason);
    return;
  }
  let planned: CompensatingEvent[];
  let built: Envelope<unknown>[];
  try {
    const out = entry.reverse(data as never, { ...envelope, data } as never);
    planned = (Array.isArray(out) ? out : [out]) as CompensatingEvent[];
    built = planned.map((c, n) => {
      if (!registry.has(c.event.type)) {
        throw new RollbackConfigError(
          'registry',
          `must hold the compensating event type "${c.event.type}"`,
          c.event.type,
          { details: { type: c.event.type } },
        );
      }
      return c.event.envelope(c.data as never, {
        source: envelope.source,
        version: c.schemaVersion,
        id: deterministicId(record.id, 'compensate', String(n)),
        time: w.now,
        causationid: record.id,
        correlationid: envelope.correlationid,
        producerservice: w.service,
        partitionkey: c.key ?? record.key,
        // The compensation concerns the same subject (and tenant, trace, ...) as the effect.
        subject: envelope.subject,
        extensions: envelope.extensions,
      }) as Envelope<unknown>;
    });
  } catch (error) {
    person(NeedsPersonReason.CompensationFailed, errorMessage(error), errorCode(error));
    return;
  }
  if (built.length === 0) {
    state.skipped.push({
      itemId: `skip:${record.id}`,
      original: ref,
      message: 'the compensation returned no event',
    });
    return;
  }
  const item: RollbackPlanItem = {
    itemId: `compensate:${record.id}`,
    action: 'compensate',
    original: ref,
    messages: [],
  };
  state.items.push(item);
  state.pending.push({
    item,
    outgoing: built.map((e, n) => ({
      envelope: e,
      topic: planned[n]!.topic ?? record.topic,
      key: planned[n]!.key ?? record.key,
    })),
  });
}

/** The plan id (from what the plan does), then every message encoded with it, then the counts. */
function assemblePlan(options: PlanRollbackOptions, w: PlanWindow, state: PlanState): RollbackPlan {
  const { service, version, strategy, since, until } = w;
  const { items, sagas, needsPerson, skipped, pending } = state;
  // The window is left out on purpose: planning the same effects again later (a default `until`
  // of "now") gives the same plan id, so re-running the same command resumes the same run.
  const planId = hashPlan({
    service,
    version,
    strategy,
    targetVersions: options.targetVersions,
    items: pending.map((p) => p.outgoing.map((o) => o.envelope.id)),
    sagas: [...sagas.keys()],
    needsPerson: needsPerson.map((n) => n.itemId),
  });
  for (const { item, outgoing } of pending) {
    item.messages = outgoing.map(({ envelope: e, topic, key }) => {
      e.producerversion = rollbackVersion(planId);
      const encoded = encodeEnvelope(e);
      const message: PlannedMessage = {
        id: e.id,
        type: e.type,
        schemaVersion: e.schemaversion,
        topic,
        headers: encoded.headers,
        body: Buffer.from(encoded.body).toString('base64'),
        data: e.data,
      };
      if (key !== undefined) message.key = key;
      return message;
    });
  }
  const plan: RollbackPlan = {
    planId,
    createdAt: w.now.toISOString(),
    service,
    version,
    strategy,
    window: since === undefined ? { until } : { since, until },
    items,
    sagas: [...sagas.values()],
    needsPerson,
    skipped,
    counts: {
      effects: state.effects,
      items: items.length,
      messages: items.reduce((n, i) => n + i.messages.length, 0),
      sagas: sagas.size,
      needsPerson: needsPerson.length,
      skipped: skipped.length,
    },
  };
  if (options.targetVersions) plan.targetVersions = { ...options.targetVersions };
  if (options.types) plan.types = [...options.types];
  return plan;
}

function toRef(record: JournalRecord): EffectRef {
  const ref: EffectRef = {
    id: record.id,
    type: record.type,
    schemaVersion: record.schemaVersion,
    seq: record.seq,
    time: record.time,
  };
  if (record.key !== undefined) ref.key = record.key;
  if (record.sagaId !== undefined) ref.sagaId = record.sagaId;
  return ref;
}

function hashPlan(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 24);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): string | undefined {
  return error instanceof BacktrackError ? error.code : undefined;
}
