export type { Disposition, IncomingMessage, MessageProcessor } from './processor.js';
