export { createDefaultLogger } from './logger.js';
export type { Logger } from './logger.js';
