export { appendAndMarkPublished, DEFAULT_JOURNAL_OPTIONS, PublishState } from './Journal.js';
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
// Query and sequence helpers for journal implementations: `@backtrack/core/adapter`.
