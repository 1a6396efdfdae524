/**
 * The value of a CloudEvents extension attribute that Backtrack does not know by name. Binary
 * content mode carries every value as its canonical string; structured mode (JSON) may carry a
 * JSON boolean or number (CloudEvents `Boolean` and `Integer`).
 */
export type ExtensionValue = string | number | boolean;

/**
 * The envelope every Backtrack message travels in. Its attributes are CloudEvents 1.0 context
 * attributes; the Backtrack-specific ones are CloudEvents extension attributes (lower-case
 * alphanumeric names, as the spec requires).
 */
export interface Envelope<TData = unknown> {
  /** Unique per message from one source; `(source, id)` is the duplicate key CloudEvents defines. */
  id: string;
  /** URI-reference of the producing context, for example `//backtrack/orders`. */
  source: string;
  /** Event type, for example `order.placed`. */
  type: string;
  specversion: '1.0';
  /**
   * RFC 3339 timestamp of the occurrence. Optional in CloudEvents: Backtrack always writes it,
   * a foreign producer may leave it out (then it stays undefined).
   */
  time?: string;
  /** Media type of `data`. @default 'application/json' */
  datacontenttype: string;
  /** The subject of the event in the context of the producer (CloudEvents `subject`). */
  subject?: string;
  /** URI of the schema `data` adheres to (CloudEvents `dataschema`). */
  dataschema?: string;
  /**
   * Extension: schema version of `data` within `type`. On receipt, when the message has no
   * `schemaversion`, it comes from a `dataschema` that names a version, else from the
   * registry's default for the type (1 unless set).
   */
  schemaversion: number;
  /** Extension: the saga this event belongs to. */
  sagaid?: string;
  /** Extension: the id of the message that caused this one. */
  causationid?: string;
  /** Extension: the id shared by every message of one business flow. */
  correlationid?: string;
  /** Extension: the service that produced the event. */
  producerservice?: string;
  /** Extension: the deployed version of the producing service. */
  producerversion?: string;
  /** Extension (CloudEvents partitioning): the ordering key, for example an aggregate id. */
  partitionkey?: string;
  /**
   * Every other extension attribute (for example `tenantid`, `traceparent`), by its CloudEvents
   * name. Kept as received and written again on publish, retry, dead letter, redrive, replay and
   * rollback. Absent when there are none.
   */
  extensions?: Record<string, ExtensionValue>;
  data: TData;
}

/**
 * A message as a transport carries it, transport-neutral.
 *
 * - **Binary content mode** (Backtrack's default): the data as bytes, every other envelope
 *   attribute as a string header keyed by its CloudEvents attribute name (no `ce_` prefix; the
 *   Kafka adapter adds `ce_`, the AMQP adapter `cloudEvents_`, following the protocol bindings).
 *   `content-type` carries `datacontenttype`.
 * - **Structured content mode**: `content-type` is `application/cloudevents+json` and the body is
 *   the whole event in the CloudEvents JSON format. The other headers, when present, are copies
 *   of attributes a transport routes by (`id`, `type`, `partitionkey`, ...); the decoder reads
 *   only the body.
 */
export interface EncodedMessage {
  headers: Record<string, string>;
  body: Uint8Array;
}

/** How an envelope is laid out on the wire (CloudEvents content modes). */
export type ContentMode = 'binary' | 'structured';
