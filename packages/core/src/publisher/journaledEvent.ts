import { encodeCheckedEnvelope } from '../envelope/codec.js';
import type { Envelope } from '../envelope/types.js';
import type { JournalAppend } from '../journal/Journal.js';
import type { EventInput, LatestVersion } from '../schema/defineEvent.js';
import type { AnyEventDefinition, EventRegistry } from '../schema/EventRegistry.js';
import { UnknownEventTypeError } from '../schema/errors.js';
import type { PublishOptions } from './Publisher.js';

/** Who stamps an event: one deploy of one service (resolved publisher or outbox-writer options). */
export interface EventStamp {
  service: string;
  version: string;
  source: string;
  topicFor: (type: string) => string;
  registry: EventRegistry;
  now: () => Date;
  /** Names the writer in the error for an unregistered type, for example `publisher`. */
  writer: string;
}

/**
 * Validates `data` against the event's schema, builds the envelope (producer service and version
 * stamped) and the journal record that goes with it. Every writer of the journal uses it (the
 * journaling publisher, the PostgreSQL outbox writer), so a rollback reads the same record
 * whichever wrote it.
 * @throws UnknownEventTypeError when the type is not in the stamp's registry (a rollback would
 *   need its schema to read it), and the schema's error on invalid data.
 */
export function prepareJournaledEvent<
  E extends AnyEventDefinition,
  V extends number = LatestVersion<E>,
>(
  stamp: EventStamp,
  event: E,
  data: EventInput<E, V>,
  options: PublishOptions<V>,
): { envelope: Envelope<unknown>; record: JournalAppend } {
  if (!stamp.registry.has(event.type) || stamp.registry.get(event.type) !== event) {
    throw new UnknownEventTypeError(event.type, {
      details: { reason: `not registered in the ${stamp.writer} registry` },
    });
  }
  const envelope = event.envelope(data, {
    source: stamp.source,
    version: options.schemaVersion,
    id: options.id,
    time: stamp.now(),
    sagaid: options.sagaId,
    causationid: options.causationId,
    correlationid: options.correlationId,
    producerservice: stamp.service,
    producerversion: stamp.version,
    partitionkey: options.key,
    subject: options.subject,
    dataschema: options.dataschema,
    extensions: options.extensions,
  }) as Envelope<unknown> & { time: string };
  // Field by field, the optional ones assigned when present: a literal with conditional spreads
  // (`...(x === undefined ? {} : { x })`) allocates a temporary object per spread and builds the
  // record on V8's slow path, once per publish.
  const record: JournalAppend = {
    id: envelope.id,
    type: envelope.type,
    schemaVersion: envelope.schemaversion,
    topic: options.topic ?? stamp.topicFor(event.type),
    service: stamp.service,
    version: stamp.version,
    time: envelope.time,
    // `event.envelope` built it with createEnvelope, which checked every attribute.
    message: encodeCheckedEnvelope(envelope),
  };
  if (options.key !== undefined) record.key = options.key;
  if (options.sagaId !== undefined) record.sagaId = options.sagaId;
  if (options.causationId !== undefined) record.causationId = options.causationId;
  return { envelope, record };
}
