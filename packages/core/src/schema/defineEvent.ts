import { z } from 'zod';
import {
  buildEnvelope,
  createEnvelope,
  type CreateEnvelopeDependencies,
  type EnvelopeExtensions,
} from '../envelope/envelope.js';
import type { Envelope, ExtensionValue } from '../envelope/types.js';
import {
  MissingTransformError,
  SchemaDefinitionError,
  SchemaValidationError,
  TransformFailedError,
  UnknownSchemaVersionError,
} from './errors.js';

/** The zod schemas of an event type, keyed by version number. */
export type VersionSchemas = { readonly [version: number]: z.ZodType };

/**
 * The transforms between a version and the one before it. Each receives the *validated* data of
 * its source version (zod output) and returns data for the target version (zod input), which is
 * then validated against the target schema.
 *
 * Either direction may be left out when the change is compatible that way (for example a new
 * optional field): the data then passes unchanged and must satisfy the target schema, else
 * {@link MissingTransformError}. `checkCompatibility` reports a missing transform for an
 * incompatible change before you deploy it. Caveat: a field that keeps its name and type but
 * changes its meaning (euros to cents) looks compatible: write the transform.
 */
export interface VersionTransforms<TPrevious extends z.ZodType, TNext extends z.ZodType> {
  /** Older to newer (upcast): lets a consumer on the new version read old events. */
  up?: (data: z.output<TPrevious>) => z.input<TNext>;
  /** Newer to older (downcast): lets a producer write, or a replay re-emit, the old shape. */
  down?: (data: z.output<TNext>) => z.input<TPrevious>;
}

/** The schemas of a definition with no version yet. */
export type NoVersions = Record<never, never>;

type SchemaAt<TSchemas extends VersionSchemas, V> = V extends keyof TSchemas ? TSchemas[V] : never;

/** The known version numbers of an event definition. */
export type EventVersion<TDef> =
  TDef extends EventDefinition<string, infer S, number> ? keyof S & number : never;
/** The newest version number of an event definition. */
export type LatestVersion<TDef> =
  TDef extends EventDefinition<string, VersionSchemas, infer L> ? L : never;
/**
 * The data of an event definition at version `V` (default: its latest) as a consumer sees it
 * after validation (zod output).
 */
export type EventData<TDef, V extends number = LatestVersion<TDef>> =
  TDef extends EventDefinition<string, infer S, number> ? z.output<SchemaAt<S, V>> : never;
/** What a producer may pass for version `V` (default: latest) before validation (zod input). */
export type EventInput<TDef, V extends number = LatestVersion<TDef>> =
  TDef extends EventDefinition<string, infer S, number> ? z.input<SchemaAt<S, V>> : never;

interface Step {
  up?: (data: unknown) => unknown;
  down?: (data: unknown) => unknown;
}

/** Options of {@link EventDefinition.envelope}. */
export interface EventEnvelopeOptions<V extends number> extends EnvelopeExtensions {
  /** CloudEvents `source` of the producer, for example `//shop/orders`. */
  source: string;
  /** The version to write; the data is validated against it. @default the latest version */
  version?: V;
  /** @default crypto.randomUUID() */
  id?: string;
  /** @default now */
  time?: string | Date;
  /** CloudEvents `subject`. */
  subject?: string;
  /** CloudEvents `dataschema` (a URI). */
  dataschema?: string;
  /** Other CloudEvents extension attributes (lower-case alphanumeric names). */
  extensions?: Record<string, ExtensionValue>;
}

const INTERNAL = Symbol('backtrack.EventDefinition.internal');

/**
 * A versioned event type. Build one with {@link defineEvent}; every `.version()` call returns a
 * NEW definition (the builder is immutable, so a shared prefix can be extended safely).
 *
 * Versions are consecutive integers (the first may be any positive integer, to allow retiring
 * old ones); each later version may carry `up`/`down` transforms to its predecessor. Reading and
 * writing validate the data at every version it passes through, so a buggy transform is caught
 * where it happens.
 *
 * Schemas must be synchronous (no async refinements or transforms).
 */
export class EventDefinition<
  TType extends string = string,
  TSchemas extends VersionSchemas = VersionSchemas,
  TLatest extends number = number,
> {
  /** The CloudEvents `type`, for example `order.placed`. */
  readonly type: TType;
  readonly #schemas: ReadonlyMap<number, z.ZodType>;
  readonly #steps: ReadonlyMap<number, Step>;
  /** The newest version (undefined: none yet), kept: every read and every envelope asks for it. */
  readonly #latest: number | undefined;

  /** @internal Use {@link defineEvent}. */
  constructor(
    type: TType,
    internal: typeof INTERNAL,
    schemas = new Map<number, z.ZodType>(),
    steps = new Map<number, Step>(),
  ) {
    if (internal !== INTERNAL) {
      throw new SchemaDefinitionError('use defineEvent(type) to create an event definition', {
        type,
      });
    }
    this.type = type;
    this.#schemas = schemas;
    this.#steps = steps;
    let latest: number | undefined;
    for (const version of schemas.keys()) latest = version;
    this.#latest = latest;
    Object.freeze(this);
  }

  /** Version numbers, ascending. */
  get versions(): readonly number[] {
    return [...this.#schemas.keys()];
  }

  /** The newest version. Throws {@link SchemaDefinitionError} on a definition with no version. */
  get latest(): TLatest {
    const last = this.#latest;
    if (last === undefined) {
      throw new SchemaDefinitionError(`event type "${this.type}" has no version`, {
        type: this.type,
      });
    }
    return last as TLatest;
  }

  /**
   * Adds version `version` with its zod schema, and (from the second version on) the transforms
   * between it and the previous version. Returns a new definition; `this` is unchanged.
   *
   * @throws {SchemaDefinitionError} when `version` is not a positive integer, is already defined,
   *   or is not exactly one more than the latest version (no gaps), or `schema` is not a zod schema.
   */
  version<const N extends number, S extends z.ZodType>(
    version: N,
    schema: S,
    ...transforms: [TLatest] extends [never]
      ? []
      : [transforms?: VersionTransforms<SchemaAt<TSchemas, TLatest>, S>]
  ): EventDefinition<TType, TSchemas & { readonly [K in N]: S }, N> {
    const details = { type: this.type, version };
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new SchemaDefinitionError(
        `version of "${this.type}" must be a positive integer, got ${version}`,
        details,
      );
    }
    if (this.#schemas.has(version)) {
      throw new SchemaDefinitionError(
        `event type "${this.type}" defines version ${version} twice`,
        details,
      );
    }
    const previous = this.#latest;
    if (previous !== undefined && version !== previous + 1) {
      throw new SchemaDefinitionError(
        `event type "${this.type}" jumps from version ${previous} to ${version}; versions must be consecutive`,
        { ...details, previous },
      );
    }
    if (typeof (schema as { safeParse?: unknown } | undefined)?.safeParse !== 'function') {
      throw new SchemaDefinitionError(
        `version ${version} of "${this.type}" needs a zod schema`,
        details,
      );
    }
    const given = transforms[0] as Step | undefined;
    if (previous === undefined && given !== undefined) {
      throw new SchemaDefinitionError(
        `the first version of "${this.type}" has no predecessor to transform to`,
        details,
      );
    }
    for (const direction of ['up', 'down'] as const) {
      const fn = given?.[direction];
      if (fn !== undefined && typeof fn !== 'function') {
        throw new SchemaDefinitionError(
          `the "${direction}" transform of "${this.type}" v${version} is not a function`,
          details,
        );
      }
    }
    const schemas = new Map(this.#schemas).set(version, schema);
    const steps = new Map(this.#steps);
    if (previous !== undefined) steps.set(version, { up: given?.up, down: given?.down });
    return new EventDefinition(this.type, INTERNAL, schemas, steps) as never;
  }

  /** True when `version` is defined. */
  hasVersion(version: number): boolean {
    return this.#schemas.has(version);
  }

  /** The zod schema of `version`. @throws {UnknownSchemaVersionError} */
  schema<V extends keyof TSchemas & number>(version: V): TSchemas[V] {
    return this.#schemaOf(version) as TSchemas[V];
  }

  /**
   * Whether every step between `from` and `to` has an explicit transform. A step without one
   * may still convert (unchanged data the neighbour schema accepts); see {@link EventDefinition.read}.
   */
  canConvert(from: number, to: number): boolean {
    if (!this.hasVersion(from) || !this.hasVersion(to)) return false;
    const direction = to > from ? 'up' : 'down';
    for (let v = from; v !== to; v += to > from ? 1 : -1) {
      const step = this.#steps.get(to > from ? v + 1 : v);
      if (step?.[direction] === undefined) return false;
    }
    return true;
  }

  /** Whether version `version` has an `up` (from version-1) and/or `down` (to version-1) transform. */
  transformsOf(version: number): { up: boolean; down: boolean } {
    const step = this.#steps.get(version);
    return { up: step?.up !== undefined, down: step?.down !== undefined };
  }

  /**
   * Validates `data` against one version's schema.
   * @throws {UnknownSchemaVersionError} | {SchemaValidationError}
   */
  parse<V extends keyof TSchemas & number>(version: V, data: unknown): z.output<TSchemas[V]> {
    return this.#parse(version, data) as z.output<TSchemas[V]>;
  }

  /**
   * Reads data written at any known version as version `as` (default: the latest), upcasting or
   * downcasting through the chain and validating at every step.
   *
   * @param data - untrusted data, for example `envelope.data`
   * @param fromVersion - the version it was written at, for example `envelope.schemaversion`
   * @throws {UnknownSchemaVersionError} | {SchemaValidationError} | {MissingTransformError} |
   *   {TransformFailedError}
   * @example
   * const v2 = OrderPlaced.read(envelope.data, envelope.schemaversion, 2);
   */
  read<V extends keyof TSchemas & number = TLatest & keyof TSchemas>(
    data: unknown,
    fromVersion: number,
    as?: V,
  ): z.output<TSchemas[V]> {
    return this.#convert(data, fromVersion, as ?? this.latest) as z.output<TSchemas[V]>;
  }

  /**
   * Converts typed data from version `from` (default: the latest) into version `to`, usually an
   * older one: replays after a rollback write the shape the old consumers understand.
   * @throws same as {@link EventDefinition.read}
   * @example
   * const v1 = OrderPlaced.write({ orderId: 'o-1', amountCents: 1250, currency: 'EUR' }, { to: 1 });
   */
  write<
    V extends keyof TSchemas & number,
    F extends keyof TSchemas & number = TLatest & keyof TSchemas,
  >(data: z.input<TSchemas[F]>, options: { to: V; from?: F }): z.output<TSchemas[V]> {
    return this.#convert(data, options.from ?? this.latest, options.to) as z.output<TSchemas[V]>;
  }

  /**
   * Builds an envelope for this event: validates `data` against `options.version` (default: the
   * latest) and puts the validated data, type and schema version into a new envelope.
   * @example
   * await transport.publish([{ topic: 'orders', message: encodeEnvelope(OrderPlaced.envelope(data, { source: '//shop/orders' })) }]);
   */
  envelope<V extends keyof TSchemas & number = TLatest & keyof TSchemas>(
    data: z.input<TSchemas[V]>,
    options: EventEnvelopeOptions<V>,
    dependencies?: CreateEnvelopeDependencies,
  ): Envelope<z.output<TSchemas[V]>> & { time: string } {
    if (readsAsIs(options)) {
      // The options object is read in place: no rest copy, no spread into a second object.
      const version =
        options.version === undefined ? (this.latest as unknown as V) : options.version;
      const valid = this.#parse(version, data) as z.output<TSchemas[V]>;
      return buildEnvelope(this.type, options.source, version, valid, options, dependencies);
    }
    // Options whose own keys may override the event's type, version or validated data (an
    // untyped caller's `type`, `schemaversion` or `data`), or that are not plain objects: the
    // rest-and-spread semantics, as they have always been.
    const { version = this.latest as unknown as V, source, id, time, ...extensions } = options;
    const valid = this.#parse(version, data) as z.output<TSchemas[V]>;
    return createEnvelope(
      { type: this.type, source, schemaversion: version, data: valid, id, time, ...extensions },
      dependencies,
    );
  }

  /**
   * A zod codec between two versions (`z.codec`), for code that speaks zod: `decode` converts
   * `from` data to `to` and `encode` converts back, each through the whole chain with the same
   * validation and errors as {@link EventDefinition.read}.
   * @example
   * const v1ToV2 = OrderPlaced.codec(1, 2);
   * v1ToV2.decode({ orderId: 'o', amount: 1.5 }); // { orderId: 'o', amountCents: 150, currency: 'EUR' }
   * v1ToV2.encode({ orderId: 'o', amountCents: 150, currency: 'EUR' }); // { orderId: 'o', amount: 1.5 }
   */
  codec<F extends keyof TSchemas & number, T extends keyof TSchemas & number>(
    from: F,
    to: T,
  ): z.ZodCodec<TSchemas[F], TSchemas[T]> {
    const source = this.#schemaOf(from) as TSchemas[F];
    const target = this.#schemaOf(to) as TSchemas[T];
    return z.codec(source, target, {
      decode: (data) => this.#convert(data, from, to) as z.input<TSchemas[T]>,
      encode: (data) => this.#convert(data, to, from) as z.output<TSchemas[F]>,
    });
  }

  #schemaOf(version: number): z.ZodType {
    const schema = this.#schemas.get(version);
    if (schema === undefined)
      throw new UnknownSchemaVersionError(this.type, version, this.versions);
    return schema;
  }

  #parse(version: number, data: unknown): unknown {
    const result = this.#schemaOf(version).safeParse(data);
    if (!result.success)
      throw new SchemaValidationError(this.type, version, result.error.issues, result.error);
    return result.data;
  }

  #convert(data: unknown, from: number, to: number): unknown {
    this.#schemaOf(to);
    let current = this.#parse(from, data);
    const delta = to > from ? 1 : -1;
    const direction = to > from ? 'up' : 'down';
    for (let v = from; v !== to; v += delta) {
      const next = v + delta;
      const transform = this.#steps.get(direction === 'up' ? next : v)?.[direction];
      if (transform === undefined) {
        // No transform: the data passes unchanged if the neighbour schema accepts it (a
        // compatible change, such as a new optional field); otherwise the change needed one.
        const result = this.#schemaOf(next).safeParse(current);
        if (!result.success) {
          throw new MissingTransformError(this.type, v, next, direction, result.error.issues);
        }
        current = result.data;
        continue;
      }
      let converted: unknown;
      try {
        converted = transform(current);
      } catch (cause) {
        throw new TransformFailedError(this.type, v, next, direction, cause);
      }
      current = this.#parse(next, converted);
    }
    return current;
  }
}

/**
 * Whether {@link EventDefinition.envelope} may read `options` in place: a plain object (so what
 * it reads is what a rest copy of it would hold) without an own `type`, `schemaversion` or
 * `data` key (which, spread after the event's own, would override them).
 */
function readsAsIs(options: object): boolean {
  return (
    typeof options === 'object' &&
    options !== null &&
    Object.getPrototypeOf(options) === Object.prototype &&
    !Object.hasOwn(options, 'type') &&
    !Object.hasOwn(options, 'schemaversion') &&
    !Object.hasOwn(options, 'data')
  );
}

/**
 * Starts an event definition. Chain `.version(n, schema, { up, down })` for each version.
 *
 * @example
 * const OrderPlaced = defineEvent('order.placed')
 *   .version(1, z.object({ orderId: z.string(), amount: z.number() }))
 *   .version(2, z.object({ orderId: z.string(), amountCents: z.int(), currency: z.string() }), {
 *     up: (v1) => ({ orderId: v1.orderId, amountCents: Math.round(v1.amount * 100), currency: 'EUR' }),
 *     down: (v2) => ({ orderId: v2.orderId, amount: v2.amountCents / 100 }),
 *   });
 */
export function defineEvent<const TType extends string>(
  type: TType,
): EventDefinition<TType, NoVersions, never> {
  if (typeof type !== 'string' || type.length === 0) {
    throw new SchemaDefinitionError('an event type must be a non-empty string', { type });
  }
  return new EventDefinition(type, INTERNAL) as EventDefinition<TType, NoVersions, never>;
}
