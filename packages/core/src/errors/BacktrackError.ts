import { redactError, redactSecrets, redactText } from '../logging/redact.js';

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
 * `instanceof` works across duplicate installs of `@backtrack/core`: every class declares its own
 * `static readonly brand` (`'@backtrack/<package>.<ClassName>'`, written out, never derived from
 * `class.name`, which a minifier may rename and two packages may share), and an instance carries
 * `Symbol.for(brand)` for its class and each parent. `instanceof` checks that symbol, which every
 * copy of a class loaded in one process shares. A subclass without its own brand (an
 * application's) falls back to the ordinary prototype check.
 */
export class BacktrackError extends Error {
  static readonly brand: string = '@backtrack/core.BacktrackError';
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
    // Brand every class from new.target up to BacktrackError, so `instanceof` a parent works.
    for (let c: unknown = new.target; typeof c === 'function'; c = Object.getPrototypeOf(c)) {
      const brand = ownBrand(c);
      if (brand !== undefined) Object.defineProperty(this, brandSymbol(brand), BRANDED);
      if (c === BacktrackError) break;
    }
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    // `this` is the class `instanceof` was asked about: check its brand, not the prototype chain.
    const brand = ownBrand(this);
    if (brand === undefined) return Function.prototype[Symbol.hasInstance].call(this, value);
    return (value as Record<symbol, unknown>)[brandSymbol(brand)] === true;
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

/** The property every brand symbol gets: `true`, not enumerable, not writable. */
const BRANDED: PropertyDescriptor = Object.freeze({ value: true });

const brandSymbols = new Map<string, symbol>();

/** `Symbol.for(brand)`, remembered (errors are branded and `instanceof`-checked on hot paths). */
function brandSymbol(brand: string): symbol {
  let symbol = brandSymbols.get(brand);
  if (symbol === undefined) brandSymbols.set(brand, (symbol = Symbol.for(brand)));
  return symbol;
}

/** The brand a class declares itself (not one inherited from its parent). */
function ownBrand(c: unknown): string | undefined {
  if (typeof c !== 'function' || !Object.hasOwn(c, 'brand')) return undefined;
  const brand = (c as { brand?: unknown }).brand;
  return typeof brand === 'string' ? brand : undefined;
}

/** True when `error` is a {@link BacktrackError} that says a retry may succeed. */
export function isRetriable(error: unknown): boolean {
  return error instanceof BacktrackError && error.retriable;
}
