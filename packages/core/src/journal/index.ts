export {
  DEFAULT_JOURNAL_OPTIONS,
  JOURNAL_PAGE_LIMITS,
  PublishState,
  SEQ_PER_MS,
  nextSeq,
  seqToTimeMs,
  timeMsToSeq,
} from './Journal.js';
export type {
  Journal,
  JournalAppend,
  JournalOptions,
  JournalPage,
  JournalQuery,
  JournalRecord,
  UnpublishedQuery,
} from './Journal.js';
export { InMemoryJournal } from './InMemoryJournal.js';
export type { InMemoryJournalOptions } from './InMemoryJournal.js';
export { JournalConfigError, JournalQueryError, JournalRecordError } from './errors.js';
export {
  encodeCursor,
  matchesFilters,
  normalizeQuery,
  toTimeMs,
  assertValidAppend,
} from './query.js';
export type { NormalizedJournalQuery } from './query.js';
