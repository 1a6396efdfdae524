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
  /** RFC 3339 timestamp of the occurrence. */
  time: string;
  /** Media type of `data`. @default 'application/json' */
  datacontenttype: string;
  /** Extension: schema version of `data` within `type`. */
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
  data: TData;
}

/**
 * A message in binary content mode, transport-neutral: the data as bytes, every other envelope
 * attribute as a string header keyed by its CloudEvents attribute name (no `ce_` prefix; the
 * Kafka adapter adds `ce_`, the AMQP adapter `cloudEvents_`, following the protocol bindings).
 * `content-type` carries `datacontenttype`.
 */
export interface EncodedMessage {
  headers: Record<string, string>;
  body: Uint8Array;
}
