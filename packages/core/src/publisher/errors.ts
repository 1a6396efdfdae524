import { BacktrackError } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/** A publisher or relay option is invalid. Raised once, at construction. */
export class PublisherConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.PublisherConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(
      CORE_ERROR_CODES.PUBLISHER_CONFIG_INVALID,
      'publisher',
      field,
      expectation,
      value,
      options,
    );
  }
}

/**
 * The transport rejected a message AFTER it was journaled. The record stays `pending`, so the
 * outbox relay delivers it later: do NOT publish the same event again under a new id (retrying
 * with the same `id` is harmless). `details.id` is the envelope id; `details.journaled` is true.
 * Retriable in the sense that the delivery will be retried by the relay.
 */
export class PublishFailedError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.PublishFailedError';
  constructor(id: string, type: string, cause: unknown) {
    super(
      CORE_ERROR_CODES.PUBLISH_FAILED,
      `publishing ${type} ${id} failed; it is journaled and the outbox relay will deliver it`,
      { cause, details: { id, type, journaled: true }, retriable: true },
    );
  }
}
