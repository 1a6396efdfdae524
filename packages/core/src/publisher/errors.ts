import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';

/** A publisher or relay option is invalid. Raised once, at construction. */
export class PublisherConfigError extends BacktrackError {
  constructor(message: string, options?: BacktrackErrorOptions) {
    super('BT_ERR_PUBLISHER_CONFIG', message, options);
  }
}

/**
 * The transport rejected a message AFTER it was journaled. The record stays `pending`, so the
 * outbox relay delivers it later: do NOT publish the same event again under a new id (retrying
 * with the same `id` is harmless). `details.id` is the envelope id; `details.journaled` is true.
 * Retriable in the sense that the delivery will be retried by the relay.
 */
export class PublishFailedError extends BacktrackError {
  constructor(id: string, type: string, cause: unknown) {
    super(
      'BT_ERR_PUBLISH_FAILED',
      `publishing ${type} ${id} failed; it is journaled and the outbox relay will deliver it`,
      { cause, details: { id, type, journaled: true }, retriable: true },
    );
  }
}
