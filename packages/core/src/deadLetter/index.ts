export {
  DEAD_LETTER_REASONS,
  DEAD_LETTER_REASON_HEADER,
  MAX_DEAD_LETTER_TEXT,
  brokerDeadLetterReason,
  deadLetterReasonOf,
  isDeadLetterReason,
  truncateDeadLetterText,
} from './reasons.js';
export type { DeadLetterReason } from './reasons.js';
