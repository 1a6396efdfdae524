import type { Envelope } from '../envelope/types.js';
import { EventDefinition } from './defineEvent.js';
import { SchemaDefinitionError, UnknownEventTypeError } from './errors.js';

// Any definition, whatever its type parameters (they are invariant in the method signatures).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyEventDefinition = EventDefinition<string, any, any>;

/** Options of {@link EventRegistry}. */
export interface EventRegistryOptions {
  /**
   * The schema version of a received event that says none: no `schemaversion` attribute and no
   * `dataschema` naming a version (a plain CloudEvent from a foreign producer), per event type.
   * Each entry must name a registered type and one of its versions.
   * @default every type: 1 ({@link DEFAULT_SCHEMA_VERSION})
   */
  defaultSchemaVersions?: Readonly<Record<string, number>>;
}

/** The schema version of a received event that says none, unless the registry sets another. */
export const DEFAULT_SCHEMA_VERSION = 1;

/**
 * The event types a service knows: one {@link EventDefinition} per type. The consumer pipeline
 * validates and upcasts with it; the compatibility check compares two of them (or one and a
 * saved snapshot).
 *
 * @example
 * const registry = new EventRegistry([OrderPlaced, PaymentCaptured]);
 * const data = registry.read(envelope, { as: 2 });
 */
export class EventRegistry {
  readonly #definitions = new Map<string, AnyEventDefinition>();
  readonly #defaultVersions = new Map<string, number>();

  /**
   * @throws {SchemaDefinitionError} on two definitions of one type, a definition with no version,
   *   or a `defaultSchemaVersions` entry for an unregistered type or an unknown version.
   */
  constructor(definitions: Iterable<AnyEventDefinition> = [], options: EventRegistryOptions = {}) {
    for (const definition of definitions) this.#add(definition);
    for (const [type, version] of Object.entries(options.defaultSchemaVersions ?? {})) {
      const definition = this.#definitions.get(type);
      if (definition === undefined) {
        throw new SchemaDefinitionError(
          `defaultSchemaVersions names "${type}", which is not registered`,
          { type },
        );
      }
      if (!definition.hasVersion(version)) {
        throw new SchemaDefinitionError(
          `defaultSchemaVersions["${type}"] is ${String(version)}, not one of its versions (${definition.versions.join(', ')})`,
          { type, version },
        );
      }
      this.#defaultVersions.set(type, version);
    }
  }

  /**
   * The schema version of a received `type` event that carries neither `schemaversion` nor a
   * `dataschema` naming a version: the `defaultSchemaVersions` entry, else 1. The consumer
   * pipeline hands it to `decodeEnvelope`.
   */
  defaultSchemaVersion(type: string): number {
    return this.#defaultVersions.get(type) ?? DEFAULT_SCHEMA_VERSION;
  }

  /**
   * Returns a NEW registry with `definitions` added (and the same `defaultSchemaVersions`; registries are immutable once built, so a
   * running consumer's view never changes under it).
   * @throws {SchemaDefinitionError} when a type is already registered.
   */
  with(...definitions: AnyEventDefinition[]): EventRegistry {
    return new EventRegistry([...this.#definitions.values(), ...definitions], {
      defaultSchemaVersions: Object.fromEntries(this.#defaultVersions),
    });
  }

  /** Registered event types, in registration order. */
  get types(): readonly string[] {
    return [...this.#definitions.keys()];
  }

  /** Every registered definition, in registration order. */
  definitions(): AnyEventDefinition[] {
    return [...this.#definitions.values()];
  }

  has(type: string): boolean {
    return this.#definitions.has(type);
  }

  /** The definition of `type`. @throws {UnknownEventTypeError} */
  get(type: string): AnyEventDefinition {
    const definition = this.#definitions.get(type);
    if (definition === undefined) throw new UnknownEventTypeError(type);
    return definition;
  }

  /**
   * Validates an envelope's data and converts it to version `as` (default: the latest version
   * of its type).
   * @throws {UnknownEventTypeError} | {UnknownSchemaVersionError} | {SchemaValidationError} |
   *   {MissingTransformError} | {TransformFailedError}
   */
  read(
    envelope: Pick<Envelope<unknown>, 'type' | 'schemaversion' | 'data'>,
    options: { as?: number } = {},
  ): unknown {
    const definition = this.get(envelope.type);
    return definition.read(envelope.data, envelope.schemaversion, options.as ?? definition.latest);
  }

  #add(definition: AnyEventDefinition): void {
    if (!(definition instanceof EventDefinition)) {
      throw new SchemaDefinitionError(
        'registry entries must be event definitions (defineEvent)',
        {},
      );
    }
    if (this.#definitions.has(definition.type)) {
      throw new SchemaDefinitionError(`event type "${definition.type}" is registered twice`, {
        type: definition.type,
      });
    }
    if (definition.versions.length === 0) {
      throw new SchemaDefinitionError(`event type "${definition.type}" has no version`, {
        type: definition.type,
      });
    }
    this.#definitions.set(definition.type, definition);
  }
}
