import { BacktrackError, type BacktrackErrorOptions } from './BacktrackError.js';

/** Options of a {@link ConfigError}: the usual ones except `retriable` (a bad option never is). */
export type ConfigErrorOptions = Omit<BacktrackErrorOptions, 'retriable'>;

/**
 * Base of every invalid-option error of `@backtrack/core`: one shape, `(field, expectation,
 * value)`, and codes ending in `_CONFIG_INVALID`. `details.field` names the option (a path such
 * as `retry.attempts`), `details.expectation` says what it must be, `details.value` what it was.
 * Thrown at construction (by the validating factory or constructor), never lazily; never
 * retriable. Catch them all with `instanceof ConfigError`. The adapters' config errors
 * (`KafkaConfigError`, `RabbitConfigError`, `PostgresConfigError`, `RedisStoreConfigError`) take
 * the same arguments.
 */
export abstract class ConfigError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.ConfigError';
  declare readonly details: Record<string, unknown> & { field: string; expectation: string };

  protected constructor(
    code: string,
    scope: string,
    field: string,
    expectation: string,
    value?: unknown,
    options: ConfigErrorOptions = {},
  ) {
    super(code, `invalid ${scope} option ${field}: ${expectation}`, {
      ...options,
      details: { ...options.details, ...configDetails(field, expectation, value) },
    });
  }
}

/** The `details` every config error carries; the value made printable (no functions, no cycles). */
export function configDetails(
  field: string,
  expectation: string,
  value?: unknown,
): { field: string; expectation: string; value?: unknown } {
  return value === undefined
    ? { field, expectation }
    : { field, expectation, value: printable(value) };
}

/** Primitives as they are; anything else by its JSON (short) or its type, never its source. */
function printable(value: unknown): unknown {
  if (value === null || ['number', 'string', 'boolean'].includes(typeof value)) return value;
  if (typeof value !== 'object') return typeof value;
  try {
    const json = JSON.stringify(value);
    return json !== undefined && json.length <= 200 ? (JSON.parse(json) as unknown) : 'object';
  } catch {
    return 'object';
  }
}
