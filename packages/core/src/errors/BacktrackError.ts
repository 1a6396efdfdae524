import { redactError, redactSecrets, redactText } from '../logging/redact.js';

const BRAND = Symbol.for('backtrack.BacktrackError');

/** Options every {@link BacktrackError} accepts. */
export interface BacktrackErrorOptions {
  /** Structured facts about the failure, safe to log. */
  details?: Record<string, unknown>;
  /** The underlying error (ES2022 `cause`). */
  cause?: unknown;
  /**
   * Whether trying the same operation again may succeed (a broker or store that is down) or
   * cannot (bad input, a bad definition). Middleware and retry loops decide on this flag alone.
   * @default false
   */
  retriable?: boolean;
}

/**
 * Base class of every error Backtrack throws. Each error has a stable `code`
 * (`BT_ERR_*`, listed in docs/errors.md, never reused) so callers branch on codes, not messages.
 *
 * `instanceof` works across duplicate installs of `@backtrack/core`: classes are branded with
 * `Symbol.for`, which is shared by every copy loaded in one process.
 */
export class BacktrackError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: BacktrackErrorOptions = {}) {
    // Secrets never leave in an error: the message, the details and the wrapped cause (a client's
    // error can carry a URL or, like ioredis' AUTH reply, the password itself) are redacted.
    super(
      redactText(message),
      options.cause === undefined ? undefined : { cause: redactError(options.cause) },
    );
    this.name = new.target.name;
    this.code = code;
    this.details = redactSecrets(options.details ?? {});
    this.retriable = options.retriable ?? false;
    Object.defineProperty(this, BRAND, { value: true });
    // Brand every class between new.target and BacktrackError, so `instanceof` a parent works.
    for (let c: unknown = new.target; typeof c === 'function' && c !== BacktrackError;) {
      Object.defineProperty(this, brandOf((c as { name: string }).name), { value: true });
      c = Object.getPrototypeOf(c);
    }
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    // `this` is the class `instanceof` was asked about: check its brand, not the prototype chain.
    const brand = this === BacktrackError ? BRAND : brandOf(this.name);
    return (value as Record<symbol, unknown>)[brand] === true;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      retriable: this.retriable,
      details: this.details,
    };
  }
}

function brandOf(className: string): symbol {
  return Symbol.for(`backtrack.${className}`);
}

/** True when `error` is a {@link BacktrackError} that says a retry may succeed. */
export function isRetriable(error: unknown): boolean {
  return error instanceof BacktrackError && error.retriable;
}
