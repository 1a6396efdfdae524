/** @backtrack/cli: the `backtrack` command, and its pieces for embedding. */
export { main, createProgram } from './program.js';
export { defineConfig, loadConfig } from './config.js';
export type { BacktrackConfig } from './config.js';
export { CLI_ERROR_CODES, CliError, EXIT } from './errors.js';
export type { CliErrorCode, ExitCode } from './errors.js';
