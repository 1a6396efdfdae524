import { createHash } from 'node:crypto';
import { decodeEnvelope, encodeCheckedEnvelope } from '../envelope/codec.js';
import { createEnvelope, withDataschemaVersion } from '../envelope/envelope.js';
import { REPLAY_OF, replayOf } from '../envelope/replayOf.js';
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
   * A safety limit: refuse a window that selects more effects than this. Memory does not need it:
   * {@link summarizeRollback} reads the journal page by page and {@link runRollback} runs a
   * summary page by page, whatever the plan's size. {@link planRollback} holds the whole plan in
   * memory, so it applies 100_000 unless told otherwise.
   * @default no limit ({@link summarizeRollback}); 100_000 ({@link planRollback})
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

/**
 * What a rollback does, without its items: the result of {@link summarizeRollback}, what a
 * progress store keeps of a run, and all {@link runRollback} needs (with the registry, it reads the
 * items from the journal page by page). JSON-serialisable.
 */
export interface RollbackPlanSummary {
  /**
   * Hash of the service, version, strategy, target versions and every planned id in journal order
   * (not of the window): plans of the same effects have equal ids, whenever they were made.
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
  counts: {
    effects: number;
    items: number;
    messages: number;
    sagas: number;
    needsPerson: number;
    skipped: number;
  };
}

/** The result of {@link planRollback}: the summary and every item, held in memory. */
export interface RollbackPlan extends RollbackPlanSummary {
  /** Effects to compensate or replay one by one, newest first (compensate) or oldest first (replay). */
  items: RollbackPlanItem[];
  /** Sagas to compensate through the saga engine (compensate strategy only), newest first. */
  sagas: SagaRollbackItem[];
  /** Effects a person must handle. */
  needsPerson: NeedsPersonItem[];
  /** Effects whose compensation is "nothing to do" (the reverser returned no event). */
  skipped: { itemId: string; original: EffectRef; message: string }[];
}

/** True when `plan` holds its items ({@link planRollback}), false for a {@link RollbackPlanSummary}. */
export function hasItems(plan: RollbackPlanSummary): plan is RollbackPlan {
  return Array.isArray((plan as Partial<RollbackPlan>).items);
}

/** The summary part of a plan (what a progress store keeps of a run). */
export function summaryOf(plan: RollbackPlanSummary): RollbackPlanSummary {
  const { planId, createdAt, service, version, strategy, window, targetVersions, types, counts } =
    plan;
  const summary: RollbackPlanSummary = {
    planId,
    createdAt,
    service,
    version,
    strategy,
    window: { ...window },
    counts: { ...counts },
  };
  if (targetVersions) summary.targetVersions = { ...targetVersions };
  if (types) summary.types = [...types];
  return summary;
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
 * The whole plan is held in memory (hence `maxEffects`, 100_000 by default): for a large window,
 * {@link summarizeRollback} gives the same planId and counts in bounded memory, and
 * {@link runRollback} runs that summary page by page.
 */
export async function planRollback(
  options: PlanRollbackOptions,
  dependencies: PlanRollbackDependencies,
): Promise<RollbackPlan> {
  const window = resolvePlanWindow(options, dependencies, 100_000);
  const state = newPageState();
  const hasher = new PlanHasher(window);
  const sagas = new Map<string, SagaRollbackItem>();
  for await (const page of journalPages(dependencies.journal, window, undefined, 500)) {
    for (const record of page.records) {
      if (window.types && !window.types.has(record.type)) continue;
      countEffect(state, window);
      hasher.add(planEffect(record, window, dependencies, state));
    }
    // Sagas span pages: a plan in memory keeps one entry per saga, all its effects in it.
    for (const [id, saga] of state.sagas) {
      const whole = sagas.get(id);
      if (whole) whole.effects.push(...saga.effects);
      else sagas.set(id, saga);
    }
    state.sagas.clear();
  }
  const planId = hasher.digest();
  encodePending(state.pending, planId);
  return assemblePlan(options, window, planId, state, [...sagas.values()]);
}

/**
 * What {@link planRollback} says, without the items: the same planId and counts, read from the
 * journal page by page, so memory stays bounded whatever the window selects (kept: the saga ids,
 * to count them, and the planning of a window of at most 5,000 effects, below). Give it to
 * {@link runRollback} with the registry (and the compensations): the run reads and plans its items
 * page by page again, with this summary's planId and clock.
 *
 * A summary of at most 5,000 effects keeps their planning (decoded, read, reversed or
 * converted, their envelopes built) with the returned object: a {@link runRollback} of this same
 * object, in this process, with the same journal, registry and compensations, from its start (not
 * a resume), takes it instead of planning them again. It is taken once and freed with the summary.
 */
export async function summarizeRollback(
  options: PlanRollbackOptions,
  dependencies: PlanRollbackDependencies,
): Promise<RollbackPlanSummary> {
  const window = resolvePlanWindow(options, dependencies, Number.POSITIVE_INFINITY);
  const hasher = new PlanHasher(window);
  const sagaIds = new Set<string>();
  const counts = { effects: 0, items: 0, messages: 0, sagas: 0, needsPerson: 0, skipped: 0 };
  const keep: KeptPage[] = [];
  let keeping = true;
  for await (const page of journalPages(
    dependencies.journal,
    window,
    undefined,
    SUMMARY_JOURNAL_PAGE,
  )) {
    const state = newPageState();
    state.effects = counts.effects;
    for (const record of page.records) {
      if (window.types && !window.types.has(record.type)) continue;
      countEffect(state, window);
      hasher.add(planEffect(record, window, dependencies, state));
    }
    const effects = state.effects - counts.effects;
    counts.effects = state.effects;
    counts.items += state.items.length;
    counts.messages += state.pending.reduce((n, p) => n + p.outgoing.length, 0);
    counts.needsPerson += state.needsPerson.length;
    counts.skipped += state.skipped.length;
    for (const id of state.sagas.keys()) sagaIds.add(id);
    // The window journal page by journal page, while it is small: a larger one keeps nothing
    // (held through the rest of the summary, its planning cost more garbage collection than
    // planning it again saved).
    if (keeping && counts.effects <= KEPT_EFFECTS) {
      keep.push({ state: { ...state, effects }, cursor: page.cursor });
    } else if (keeping) {
      keeping = false;
      keep.length = 0;
    }
  }
  counts.sagas = sagaIds.size;
  const summary = headerOf(options, window, hasher.digest(), counts);
  if (keep.length > 0) {
    const { journal, registry, compensations } = dependencies;
    keptPlanning.set(summary, {
      identity: identityOf(summary),
      journal,
      registry,
      compensations,
      pages: keep,
    });
  }
  return summary;
}

/** The largest window whose planning {@link summarizeRollback} keeps for a run of its summary. */
export const KEPT_EFFECTS = 5_000;

/** Records per journal read of {@link summarizeRollback} (the pages it keeps are these). */
const SUMMARY_JOURNAL_PAGE = 1_000;

/** One journal page planned by a summary: its effects, and the journal cursor after it. */
interface KeptPage {
  state: PageState;
  cursor: string | undefined;
}

/** What a summary planned of its window's start, for a run of that summary (taken once). */
interface KeptPlanning {
  /** The summary's identity when it was made: a summary changed since is planned again. */
  identity: string;
  journal: Journal;
  registry: EventRegistry;
  compensations: CompensationRegistry | undefined;
  pages: KeptPage[];
}

const keptPlanning = new WeakMap<RollbackPlanSummary, KeptPlanning>();

function identityOf(summary: RollbackPlanSummary): string {
  const { planId, createdAt, service, version, strategy, window, targetVersions, types } = summary;
  return JSON.stringify([
    planId,
    createdAt,
    service,
    version,
    strategy,
    window.since,
    window.until,
    targetVersions,
    types,
  ]);
}

/**
 * The planning a summary kept, when a run of exactly that summary, with the same collaborators,
 * starts from the beginning with journal reads of the summary's size. Taken once.
 */
function takeKept(
  summary: RollbackPlanSummary,
  dependencies: PlanRollbackDependencies,
  cursor: string | undefined,
  journalPage: number,
): KeptPage[] | undefined {
  const kept = keptPlanning.get(summary);
  if (kept === undefined) return undefined;
  keptPlanning.delete(summary);
  if (
    cursor !== undefined ||
    journalPage !== SUMMARY_JOURNAL_PAGE ||
    kept.journal !== dependencies.journal ||
    kept.registry !== dependencies.registry ||
    kept.compensations !== dependencies.compensations ||
    kept.identity !== identityOf(summary)
  ) {
    return undefined;
  }
  return kept.pages;
}

/** Adds a page's planning to the page being assembled, as if planned into it. */
function mergeInto(target: PageState, page: PageState): void {
  target.items.push(...page.items);
  target.needsPerson.push(...page.needsPerson);
  target.skipped.push(...page.skipped);
  target.pending.push(...page.pending);
  target.effects += page.effects;
  for (const [id, saga] of page.sagas) {
    const known = target.sagas.get(id);
    if (known) known.effects.push(...saga.effects);
    else target.sagas.set(id, saga);
  }
}

/** One page of a plan, planned from the journal (see {@link planPages}). */
export interface PlannedPage {
  items: RollbackPlanItem[];
  /** The sagas of this page's effects (a saga whose effects span pages is on each of them). */
  sagas: SagaRollbackItem[];
  needsPerson: NeedsPersonItem[];
  skipped: RollbackPlan['skipped'];
  effects: number;
  /** The journal cursor after this page (absent after the last page): where a resume starts. */
  cursor?: string;
}

/**
 * The items of `summary`, planned again from the journal, about `pageSize` effects at a time,
 * starting after `cursor` (a page's {@link PlannedPage.cursor}). The same journal content gives
 * the same items, messages and ids as {@link planRollback} (the summary's planId and clock are
 * used), so a run resumed from a cursor publishes exactly what the first runner would have.
 * `forRun`: the pages go to {@link runRollback} only, which never serialises them: each message's
 * `body` is left empty (no base64) and {@link plannedBody} gives its bytes.
 */
export async function* planPages(
  summary: RollbackPlanSummary,
  dependencies: PlanRollbackDependencies,
  cursor: string | undefined,
  pageSize: number,
  forRun = false,
): AsyncGenerator<PlannedPage> {
  const window = resolvePlanWindow(
    {
      service: summary.service,
      version: summary.version,
      strategy: summary.strategy,
      since: summary.window.since,
      until: summary.window.until,
      targetVersions: summary.targetVersions,
      types: summary.types,
    },
    { ...dependencies, now: () => new Date(summary.createdAt) },
    Number.POSITIVE_INFINITY,
  );
  const journalPage = Math.min(SUMMARY_JOURNAL_PAGE, pageSize);
  // A run of a summary made in this process starts with what the summary planned.
  const kept = forRun ? takeKept(summary, dependencies, cursor, journalPage) : undefined;
  let state = newPageState();
  for await (const page of plannedPages(dependencies.journal, window, cursor, journalPage, kept)) {
    if (page.planned !== undefined) mergeInto(state, page.planned);
    else {
      for (const record of page.records) {
        if (window.types && !window.types.has(record.type)) continue;
        state.effects++;
        planEffect(record, window, dependencies, state);
      }
    }
    if (state.effects >= pageSize || page.cursor === undefined) {
      encodePending(state.pending, summary.planId, !forRun);
      const planned: PlannedPage = {
        items: state.items,
        sagas: [...state.sagas.values()],
        needsPerson: state.needsPerson,
        skipped: state.skipped,
        effects: state.effects,
      };
      if (page.cursor !== undefined) planned.cursor = page.cursor;
      yield planned;
      state = newPageState();
    }
  }
}

/**
 * The items of a plan summary, planned from the journal `pageSize` effects at a time (from
 * `cursor`, a page's {@link PlannedPage.cursor}): what {@link runRollback} runs, for a person to
 * read (a preview of the first page, a dump page by page) in bounded memory.
 */
export function planRollbackPages(
  summary: RollbackPlanSummary,
  dependencies: PlanRollbackDependencies,
  options: { cursor?: string; pageSize?: number } = {},
): AsyncGenerator<PlannedPage> {
  const pageSize = options.pageSize ?? 2_000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
    throw new RollbackConfigError('pageSize', 'must be a positive integer', pageSize);
  }
  return planPages(summary, dependencies, options.cursor, pageSize);
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

/** What planning (one page, or the whole plan) has found. Messages are encoded once the plan id is known. */
interface PageState {
  items: RollbackPlanItem[];
  sagas: Map<string, SagaRollbackItem>;
  needsPerson: NeedsPersonItem[];
  skipped: RollbackPlan['skipped'];
  pending: Pending[];
  effects: number;
}

interface Pending {
  item: RollbackPlanItem;
  outgoing: { envelope: Envelope<unknown>; topic: string; key?: string }[];
}

function newPageState(): PageState {
  return { items: [], sagas: new Map(), needsPerson: [], skipped: [], pending: [], effects: 0 };
}

function countEffect(state: PageState, w: PlanWindow): void {
  state.effects++;
  if (state.effects > w.maxEffects) {
    const { service, version, since, until } = w;
    throw new RollbackPlanTooLargeError(w.maxEffects, { service, version, since, until });
  }
}

/**
 * The plan id, hashed as planning goes: the header, then one line per planned effect in journal
 * order (what it publishes, its saga, or that a person must handle it). Nothing is kept.
 */
class PlanHasher {
  readonly #hash = createHash('sha256');
  constructor(w: PlanWindow) {
    const { service, version, strategy, targetVersions } = w;
    this.#hash.update(JSON.stringify({ service, version, strategy, targetVersions }));
  }
  add(line: string | undefined): void {
    if (line !== undefined) this.#hash.update(`\n${line}`);
  }
  digest(): string {
    return this.#hash.digest('hex').slice(0, 24);
  }
}

/** Checks the options once (each bad field named) and fixes the window. */
function resolvePlanWindow(
  options: PlanRollbackOptions,
  dependencies: PlanRollbackDependencies,
  defaultMaxEffects: number,
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
    maxEffects: options.maxEffects ?? defaultMaxEffects,
    now,
  };
}

/** The journal's records of the window, page by page: newest first to compensate, oldest to replay. */
async function* journalPages(
  journal: Journal,
  w: PlanWindow,
  from: string | undefined,
  limit: number,
): AsyncGenerator<{ records: JournalRecord[]; cursor: string | undefined }> {
  let cursor = from;
  do {
    const page = await journal.query({
      service: w.service,
      version: w.version,
      since: w.since,
      until: w.until,
      direction: w.strategy === 'compensate' ? 'backward' : 'forward',
      cursor,
      limit,
    });
    cursor = page.nextCursor;
    yield { records: page.items, cursor };
  } while (cursor);
}

/**
 * The journal pages from `from`, each either read (`records`) or, for the pages a summary kept,
 * already planned (`planned`); the journal is read on from the last kept page's cursor.
 */
async function* plannedPages(
  journal: Journal,
  w: PlanWindow,
  from: string | undefined,
  limit: number,
  kept: KeptPage[] | undefined,
): AsyncGenerator<
  | { planned: PageState; records?: undefined; cursor: string | undefined }
  | { planned?: undefined; records: JournalRecord[]; cursor: string | undefined }
> {
  let cursor = from;
  if (kept !== undefined && kept.length > 0) {
    // Taken off the list as they go: a page's planning is not held once it ran.
    for (let page = kept.shift(); page !== undefined; page = kept.shift()) {
      cursor = page.cursor;
      yield { planned: page.state, cursor };
    }
    if (cursor === undefined) return;
  }
  yield* journalPages(journal, w, cursor, limit);
}

/** One journaled effect: grouped under its saga, or decoded and planned as a replay or a compensation. */
function planEffect(
  record: JournalRecord,
  w: PlanWindow,
  dependencies: PlanRollbackDependencies,
  state: PageState,
): string | undefined {
  const ref = toRef(record);
  if (w.strategy === 'compensate' && record.sagaId !== undefined) {
    const itemId = `saga:${record.sagaId}`;
    const saga = state.sagas.get(record.sagaId) ?? { itemId, sagaId: record.sagaId, effects: [] };
    saga.effects.push(ref);
    state.sagas.set(record.sagaId, saga);
    return `s ${record.sagaId} ${record.id}`;
  }
  const person = (reason: NeedsPersonReason, message: string, code?: string) => {
    const itemId = `person:${record.id}`;
    state.needsPerson.push({
      itemId,
      original: ref,
      reason,
      message,
      ...(code ? { code } : {}),
    });
    return `p ${itemId}`;
  };
  const { registry } = dependencies;
  let envelope: Envelope<unknown>;
  let data: unknown;
  try {
    envelope = decodeEnvelope(record.message, {
      defaultSchemaVersion: (type) => registry.defaultSchemaVersion(type),
    });
    data = registry.read(envelope, w.strategy === 'replay' ? { as: envelope.schemaversion } : {});
  } catch (error) {
    return person(NeedsPersonReason.Unreadable, errorMessage(error), errorCode(error));
  }
  return w.strategy === 'replay'
    ? planReplay(record, ref, envelope, data, w, registry, state, person)
    : planCompensation(record, ref, envelope, data, w, dependencies, state, person);
}

/** Records an effect for a person; returns its plan-id line. */
type Person = (reason: NeedsPersonReason, message: string, code?: string) => string;

/** Replay: the effect again, converted to its target version, with a deterministic new id. */
function planReplay(
  record: JournalRecord,
  ref: EffectRef,
  envelope: Envelope<unknown>,
  data: unknown,
  w: PlanWindow,
  registry: EventRegistry,
  state: PageState,
  person: Person,
): string | undefined {
  const target = w.targetVersions?.[record.type] ?? envelope.schemaversion;
  let converted: unknown;
  try {
    converted = registry.get(record.type).read(data, envelope.schemaversion, target);
  } catch (error) {
    return person(NeedsPersonReason.NotConvertible, errorMessage(error), errorCode(error));
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
    // `replayof` names the effect replayed (the first one, when a replay is replayed again): a
    // consumer's default dedupe key is the original's, so a consumer that handled the original
    // drops the replay as a duplicate, and only one that never did (it dead-lettered it, say)
    // handles it (envelope/replayOf.ts).
    extensions: { ...envelope.extensions, [REPLAY_OF]: replayOf(envelope) ?? record.id },
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
  return `i ${item.itemId} ${next.id}`;
}

/** Compensate: the events the registered compensation returns for the effect. */
function planCompensation(
  record: JournalRecord,
  ref: EffectRef,
  envelope: Envelope<unknown>,
  data: unknown,
  w: PlanWindow,
  dependencies: PlanRollbackDependencies,
  state: PageState,
  person: Person,
): string | undefined {
  const { registry } = dependencies;
  const entry = dependencies.compensations!.get(record.type);
  if (!entry) {
    return person(
      NeedsPersonReason.NoCompensation,
      `no compensation registered for "${record.type}"`,
    );
  }
  if (entry.kind === 'irreversible') return person(NeedsPersonReason.Irreversible, entry.reason);
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
    return person(NeedsPersonReason.CompensationFailed, errorMessage(error), errorCode(error));
  }
  if (built.length === 0) {
    state.skipped.push({
      itemId: `skip:${record.id}`,
      original: ref,
      message: 'the compensation returned no event',
    });
    return undefined;
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
  return `i ${item.itemId} ${built.map((e) => e.id).join(' ')}`;
}

/**
 * The encoded body of each message planned in this process, so a run publishes and journals the
 * bytes planning made instead of decoding `body` (base64) again. A message from elsewhere (a plan
 * read back from JSON) is not in it: its body is decoded from base64.
 */
const encodedBodies = new WeakMap<PlannedMessage, { base64: string; bytes: Uint8Array }>();

/** The body bytes of a planned message (read-only: shared with the plan). */
export function plannedBody(message: PlannedMessage): Uint8Array {
  const known = encodedBodies.get(message);
  // The same string planning made (a body changed since is decoded from what it is now).
  if (known !== undefined && known.base64 === message.body) return known.bytes;
  const bytes = Buffer.from(message.body, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encodes every pending item's messages, now that the plan id (their producer version) is known.
 * Without `base64`, the body is left empty: only {@link plannedBody} reads it (a run's pages).
 */
function encodePending(pending: readonly Pending[], planId: string, base64 = true): void {
  const version = rollbackVersion(planId);
  for (const { item, outgoing } of pending) {
    item.messages = outgoing.map(({ envelope: e, topic, key }) => {
      e.producerversion = version;
      // Built by createEnvelope (which checked every attribute) and given a non-empty
      // producerversion since: no second check.
      const encoded = encodeCheckedEnvelope(e);
      const message: PlannedMessage = {
        id: e.id,
        type: e.type,
        schemaVersion: e.schemaversion,
        topic,
        headers: encoded.headers,
        // A view of the encoded bytes (no copy before the base64).
        body: base64
          ? Buffer.from(
              encoded.body.buffer,
              encoded.body.byteOffset,
              encoded.body.byteLength,
            ).toString('base64')
          : '',
        data: e.data,
      };
      if (key !== undefined) message.key = key;
      encodedBodies.set(message, { base64: message.body, bytes: encoded.body });
      return message;
    });
  }
}

/** The plan's summary: its identity, its frozen window and its counts. */
function headerOf(
  options: PlanRollbackOptions,
  w: PlanWindow,
  planId: string,
  counts: RollbackPlanSummary['counts'],
): RollbackPlanSummary {
  const { service, version, strategy, since, until } = w;
  const summary: RollbackPlanSummary = {
    planId,
    createdAt: w.now.toISOString(),
    service,
    version,
    strategy,
    window: since === undefined ? { until } : { since, until },
    counts,
  };
  if (options.targetVersions) summary.targetVersions = { ...options.targetVersions };
  if (options.types) summary.types = [...options.types];
  return summary;
}

/** The whole plan: its summary and its items. */
function assemblePlan(
  options: PlanRollbackOptions,
  w: PlanWindow,
  planId: string,
  state: PageState,
  sagas: SagaRollbackItem[],
): RollbackPlan {
  const { items, needsPerson, skipped } = state;
  const header = headerOf(options, w, planId, {
    effects: state.effects,
    items: items.length,
    messages: items.reduce((n, i) => n + i.messages.length, 0),
    sagas: sagas.length,
    needsPerson: needsPerson.length,
    skipped: skipped.length,
  });
  const { counts, ...rest } = header;
  // The key order of a stored or printed plan stays as it was: items before the counts.
  return { ...rest, items, sagas, needsPerson, skipped, counts };
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorCode(error: unknown): string | undefined {
  return error instanceof BacktrackError ? error.code : undefined;
}
