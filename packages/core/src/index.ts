/**
 * @backtrack/core public API. Each concept folder keeps its own named export list in its
 * `index.ts`; this file re-exports those lists, so a new export is reviewed in its concept's
 * barrel (one file per concept keeps parallel work from colliding here).
 */
export * from './errors/index.js';
export * from './logging/index.js';
export * from './retry/index.js';
export * from './saga/index.js';
export * from './schema/index.js';
export * from './envelope/index.js';
export * from './transport/index.js';
export * from './dedupe/index.js';
export * from './consumer/index.js';
export * from './journal/index.js';
export * from './publisher/index.js';
export * from './rollback/index.js';
export * from './deadLetter/index.js';
export * from './telemetry/index.js';
