import type { SagaRecord, SagaStatus, StoredError } from '../SagaStore.js';
import type { Logger } from '../../logging/logger.js';
import type { SagaStore } from '../SagaStore.js';
import { SagaEngineConfigError } from '../errors.js';
import { checkInterceptors, type StepInterceptor } from './interceptors.js';

/** Engine options, validated once by {@link createSagaEngine}. */
export interface SagaEngineOptions {
  /** How many sagas `recover()` drives at once. @default 8 */
  recoveryConcurrency?: number;
  /** Page size `recover()` reads the store with. @default 100 */
  recoveryPageSize?: number;
  /**
   * How long a saga's ownership lease lasts without renewal, in ms. Every transition renews it
   * (in the same store write) and a heartbeat renews it while a step runs longer; another engine
   * takes a saga over only after it expired, so this is also how long a saga whose engine died
   * waits before `recover()` elsewhere resumes it. Keep it well above clock skew between hosts.
   * @default 30_000
   */
  leaseMs?: number;
  /** How often the heartbeat renews the leases of sagas whose step runs long, in ms. @default leaseMs / 3 */
  heartbeatMs?: number;
  /**
   * How long `cancel()`/`compensate()` wait for the engine that owns a saga to act on the request
   * before returning with `requested: true`. @default 30_000
   */
  requestTimeoutMs?: number;
  /** How often a waiting `cancel()`/`compensate()` reads the saga. @default 100 */
  requestPollMs?: number;
  /**
   * Wrap every call of a step's `run` and `compensate`, the first outermost (see
   * {@link StepInterceptor}). A throw in one is handled as the step's own failure. @default []
   */
  interceptors?: readonly StepInterceptor[];
}

export const DEFAULT_SAGA_ENGINE_OPTIONS: Readonly<Required<SagaEngineOptions>> = Object.freeze({
  recoveryConcurrency: 8,
  recoveryPageSize: 100,
  leaseMs: 30_000,
  heartbeatMs: 10_000,
  requestTimeoutMs: 30_000,
  requestPollMs: 100,
  interceptors: Object.freeze([]),
});

/** Fields of {@link SagaEngineOptions} that must be integers >= 1. */
const POSITIVE_INTEGER_OPTIONS = [
  'recoveryConcurrency',
  'recoveryPageSize',
  'leaseMs',
  'heartbeatMs',
  'requestTimeoutMs',
  'requestPollMs',
] as const;

/**
 * Merges `options` over {@link DEFAULT_SAGA_ENGINE_OPTIONS} (`heartbeatMs` defaults to a third of
 * `leaseMs`) and validates the result once; throws {@link SagaEngineConfigError}.
 */
export function resolveSagaEngineOptions(
  options: SagaEngineOptions = {},
): Readonly<Required<SagaEngineOptions>> {
  const defined = Object.fromEntries(
    Object.entries(options ?? {}).filter(([, value]) => value !== undefined),
  ) as SagaEngineOptions;
  const merged = { ...DEFAULT_SAGA_ENGINE_OPTIONS, ...defined };
  if (defined.heartbeatMs === undefined) {
    merged.heartbeatMs = Math.max(1, Math.floor(merged.leaseMs / 3));
  }
  for (const field of POSITIVE_INTEGER_OPTIONS) {
    if (!Number.isInteger(merged[field]) || merged[field] < 1) {
      throw new SagaEngineConfigError(field, 'must be an integer >= 1', merged[field]);
    }
  }
  merged.interceptors = checkInterceptors(defined.interceptors);
  return Object.freeze(merged);
}

/** Options and collaborators in one object: `createSagaEngine({ store, leaseMs: 60_000 })`. */
export type SagaEngineConfig = SagaEngineOptions & SagaEngineDependencies;

/** Splits a {@link SagaEngineConfig} into the engine's options and its collaborators. */
export function splitSagaEngineConfig(
  config: SagaEngineConfig,
): [SagaEngineOptions, SagaEngineDependencies] {
  const options: Record<string, unknown> = {};
  const dependencies: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config ?? {})) {
    (key in DEFAULT_SAGA_ENGINE_OPTIONS ? options : dependencies)[key] = value;
  }
  return [options as SagaEngineOptions, dependencies as unknown as SagaEngineDependencies];
}

/** Collaborators the engine uses; everything but `store` has a default. */
export interface SagaEngineDependencies {
  store: SagaStore;
  logger?: Logger;
  /** Milliseconds since the epoch. @default Date.now */
  now?: () => number;
  /** Waits between retries. Tests pass a no-op or fake timers. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random source in [0, 1) for backoff jitter. @default Math.random */
  random?: () => number;
  /** This engine's name in saga leases. @default `<host>/<pid>/<random>` */
  ownerId?: string;
}

/** Options of `cancel()` and `compensate()` for a saga another engine owns. */
export interface RequestOptions {
  /**
   * Wait for the owning engine's outcome. `false`: return as soon as the request is written,
   * with `requested: true`. @default true
   */
  wait?: boolean;
  /** Longest wait for the owner, in ms; then returns with `requested: true`. @default requestTimeoutMs */
  timeoutMs?: number;
}

export interface StartOptions {
  /** The saga's id; starting twice with one id runs it once. @default a random UUID */
  sagaId?: string;
  /** Overrides the definition's `deadlineMs` for this saga. */
  deadlineMs?: number;
}

/** Where a saga stands after a call of the engine. */
export interface SagaResult {
  sagaId: string;
  status: SagaStatus;
  /** False when `start` found the saga already started (it was not run again). */
  started: boolean;
  record: SagaRecord;
  /**
   * Set by `cancel`/`compensate` when another engine owns the saga and the call returned before
   * that engine acted (`wait: false`, or the wait timed out): the request is in the saga's record
   * and its owner acts on it at its next transition. `status` is where the saga stood then.
   */
  requested?: true;
}

export interface RecoverySummary {
  /** Sagas found in flight (`running` or `compensating`). */
  found: number;
  results: SagaResult[];
  /** Sagas that could not be driven now (store down, another engine advanced them). */
  errors: { sagaId: string; error: StoredError }[];
  /** Sagas another live engine owns (its lease has not expired): left to it. */
  owned: { sagaId: string; owner: string; expiresAt: string }[];
}
