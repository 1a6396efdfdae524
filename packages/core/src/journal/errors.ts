import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';

/** A journal option is invalid (for example a non-positive `retentionMs`). */
export class JournalConfigError extends BacktrackError {
  constructor(message: string, options?: BacktrackErrorOptions) {
    super('BT_ERR_JOURNAL_CONFIG', message, options);
  }
}

/** A journal query is invalid: a bad time bound, limit, or a cursor that is not one the journal issued. */
export class JournalQueryError extends BacktrackError {
  constructor(message: string, options?: BacktrackErrorOptions) {
    super('BT_ERR_JOURNAL_QUERY_INVALID', message, options);
  }
}

/** A record given to `append` is malformed (missing id, type, service, version, topic or time). */
export class JournalRecordError extends BacktrackError {
  constructor(message: string, options?: BacktrackErrorOptions) {
    super('BT_ERR_JOURNAL_RECORD_INVALID', message, options);
  }
}
