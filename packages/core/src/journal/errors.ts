import { BacktrackError, type BacktrackErrorOptions } from '../errors/BacktrackError.js';
import { CORE_ERROR_CODES } from '../errors/codes.js';
import { ConfigError, type ConfigErrorOptions } from '../errors/ConfigError.js';

/** A journal option is invalid (for example a non-positive `retentionMs`). */
export class JournalConfigError extends ConfigError {
  static override readonly brand: string = '@backtrack/core.JournalConfigError';
  constructor(field: string, expectation: string, value?: unknown, options?: ConfigErrorOptions) {
    super(CORE_ERROR_CODES.JOURNAL_CONFIG_INVALID, 'journal', field, expectation, value, options);
  }
}

/** A journal query is invalid: a bad time bound, limit, or a cursor that is not one the journal issued. */
export class JournalQueryError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.JournalQueryError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(CORE_ERROR_CODES.JOURNAL_QUERY_INVALID, message, options);
  }
}

/** A record given to `append` is malformed (missing id, type, service, version, topic or time). */
export class JournalRecordError extends BacktrackError {
  static override readonly brand: string = '@backtrack/core.JournalRecordError';
  constructor(message: string, options?: BacktrackErrorOptions) {
    super(CORE_ERROR_CODES.JOURNAL_RECORD_INVALID, message, options);
  }
}
