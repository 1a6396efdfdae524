// The header and truncation helpers transports use: `@backtrack/core/adapter`.
export { DEAD_LETTER_REASONS, deadLetterReasonOf, isDeadLetterReason } from './reasons.js';
export type { DeadLetterReason } from './reasons.js';
