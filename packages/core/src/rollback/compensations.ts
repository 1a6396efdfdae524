import type { Envelope } from '../envelope/types.js';
import type { EventData, EventInput, LatestVersion } from '../schema/defineEvent.js';
import { EventDefinition } from '../schema/defineEvent.js';
import type { AnyEventDefinition } from '../schema/EventRegistry.js';
import { CompensationDefinitionError } from './errors.js';

/** One event a compensation asks to publish. Build it with {@link emit} so `data` is typed. */
export interface CompensatingEvent {
  event: AnyEventDefinition;
  data: unknown;
  /** Ordering key. @default the original event's key */
  key?: string;
  /** Destination. @default the original event's topic */
  topic?: string;
  /** Schema version to write. @default the latest version of `event` */
  schemaVersion?: number;
}

/**
 * A compensating event with `data` typed against `event`'s schema (version `schemaVersion`, the
 * latest by default).
 *
 * @example
 * reversible(PaymentCaptured, (p) => [emit(PaymentRefunded, { paymentId: p.paymentId, amountCents: p.amountCents })])
 */
export function emit<E extends AnyEventDefinition, V extends number = LatestVersion<E>>(
  event: E,
  data: EventInput<E, V>,
  options: { key?: string; topic?: string; schemaVersion?: V } = {},
): CompensatingEvent {
  return { event, data, ...options };
}

/**
 * How to reverse one event: given its data (read at the LATEST version of its definition, whatever
 * version it was written in) and its envelope, return the events that undo its effect. Return an
 * empty array when there is nothing to undo. MUST be deterministic (a resumed rollback plans the
 * same events) and MUST NOT have side effects: it only describes events; the run publishes them.
 */
export type Reverser<E extends AnyEventDefinition> = (
  data: EventData<E>,
  envelope: Envelope<EventData<E>>,
) => CompensatingEvent | readonly CompensatingEvent[];

/** A registry entry. */
export type Compensation =
  | { kind: 'reversible'; event: AnyEventDefinition; reverse: Reverser<AnyEventDefinition> }
  | { kind: 'irreversible'; event: AnyEventDefinition; reason: string };

/**
 * For each event type, how a rollback reverses it, or why it cannot be (then the plan lists
 * every such effect under `needsPerson`). Immutable: each call returns a new registry.
 *
 * @example
 * const compensations = defineCompensations()
 *   .reversible(StockReserved, (d) => emit(StockReleased, { sku: d.sku, qty: d.qty }))
 *   .irreversible(EmailSent, 'an email cannot be unsent: send a correction by hand');
 */
export class CompensationRegistry {
  readonly #entries: ReadonlyMap<string, Compensation>;

  constructor(entries: Iterable<Compensation> = []) {
    const map = new Map<string, Compensation>();
    for (const entry of entries) {
      if (!(entry.event instanceof EventDefinition)) {
        throw new CompensationDefinitionError(
          'a compensation needs an event definition (defineEvent)',
          {},
        );
      }
      if (map.has(entry.event.type)) {
        throw new CompensationDefinitionError(
          `event type "${entry.event.type}" has two compensations`,
          {
            type: entry.event.type,
          },
        );
      }
      if (entry.kind === 'reversible' && typeof entry.reverse !== 'function') {
        throw new CompensationDefinitionError(
          `the reverser of "${entry.event.type}" is not a function`,
          {
            type: entry.event.type,
          },
        );
      }
      if (
        entry.kind === 'irreversible' &&
        (typeof entry.reason !== 'string' || entry.reason.trim() === '')
      ) {
        throw new CompensationDefinitionError(
          `irreversible "${entry.event.type}" needs a reason (shown to the person who handles it)`,
          { type: entry.event.type },
        );
      }
      map.set(entry.event.type, entry);
    }
    this.#entries = map;
  }

  /** Declares how to reverse `event`. */
  reversible<E extends AnyEventDefinition>(event: E, reverse: Reverser<E>): CompensationRegistry {
    return new CompensationRegistry([
      ...this.#entries.values(),
      { kind: 'reversible', event, reverse: reverse as unknown as Reverser<AnyEventDefinition> },
    ]);
  }

  /** Declares that `event` cannot be reversed automatically, and why. */
  irreversible(event: AnyEventDefinition, reason: string): CompensationRegistry {
    return new CompensationRegistry([
      ...this.#entries.values(),
      { kind: 'irreversible', event, reason },
    ]);
  }

  get(type: string): Compensation | undefined {
    return this.#entries.get(type);
  }

  /** Types with an entry, in registration order. */
  get types(): readonly string[] {
    return [...this.#entries.keys()];
  }
}

/** Starts an empty {@link CompensationRegistry}. */
export function defineCompensations(): CompensationRegistry {
  return new CompensationRegistry();
}
