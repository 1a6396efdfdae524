import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { BacktrackError } from '@backtrack/core';
import { registerDlq } from './commands/dlq.js';
import { registerJournal } from './commands/journal.js';
import { registerOutboxDeadLetters } from './commands/outboxDeadLetters.js';
import { registerPostgres } from './commands/postgres.js';
import { registerRollback } from './commands/rollback.js';
import { registerSagas } from './commands/sagas.js';
import { registerSchemas } from './commands/schemas.js';
import { loadConfig } from './config.js';
import { CliContext, messageOf, type GlobalOptions } from './context.js';
import { CliError, EXIT } from './errors.js';
import { createOutput, type Output } from './output.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** Backtrack error codes that mean "bad input", reported with the usage exit code. */
const USAGE_CODES =
  /^BT_ERR_(.*_CONFIG(_INVALID)?|.*_QUERY_INVALID|ROLLBACK_RUN_CONFLICT|SCHEMA_SNAPSHOT_INVALID)$/;

function report(error: unknown, json: boolean): number {
  let code = 'BT_ERR_CLI';
  let exit: number = EXIT.Error;
  let hint: string | undefined;
  let details: Record<string, unknown> | undefined;
  if (error instanceof CliError) {
    ({ code, exitCode: exit, hint } = error);
  } else if (error instanceof BacktrackError) {
    code = error.code;
    details = error.details;
    if (USAGE_CODES.test(code)) exit = EXIT.Usage;
  }
  const message = messageOf(error);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code, message, ...(hint ? { hint } : {}), ...(details ? { details } : {}) } }, null, 2)}\n`,
    );
  } else {
    process.stderr.write(`error: ${message}${code.startsWith('BT_ERR_CLI') ? '' : ` (${code})`}\n`);
    if (hint) process.stderr.write(`hint: ${hint}\n`);
    if (
      !(error instanceof BacktrackError) &&
      !(error instanceof CliError) &&
      process.env.BACKTRACK_DEBUG
    ) {
      process.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    }
  }
  return exit;
}

/** Builds the `backtrack` program. Exposed for tests and for embedding in your own CLI. */
export function createProgram(state: { exitCode: number }): Command {
  const program = new Command('backtrack')
    .description(
      'Undo and redo what a bad deploy published: rollbacks, sagas, schemas, dead letters',
    )
    .version(VERSION, '-V, --cli-version', 'print the CLI version')
    .option(
      '--config <file>',
      'config module exporting registry, compensations, sagas (default: ./backtrack.config.mjs|js, BACKTRACK_CONFIG)',
    )
    .option('--json', 'machine-readable JSON on stdout')
    .option(
      '--redis-url <url>',
      'Redis for the journal, rollback progress and sagas (env REDIS_URL)',
    )
    .option('--transport <kind>', 'kafka or rabbitmq (env BACKTRACK_TRANSPORT)')
    .option('--kafka-brokers <list>', 'comma-separated host:port (env KAFKA_BROKERS)')
    .option('--amqp-url <url>', 'RabbitMQ URL (env AMQP_URL)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const run =
    (fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args.at(-1) as Command;
      const globals = cmd.optsWithGlobals<GlobalOptions>();
      const out = createOutput(globals.json === true);
      let ctx: CliContext | undefined;
      try {
        const { config } = await loadConfig(globals.config);
        ctx = new CliContext(globals, config);
        state.exitCode = (await fn(ctx, out, cmd)) ?? EXIT.Ok;
      } catch (error) {
        state.exitCode = report(error, out.json);
      } finally {
        await ctx?.close();
      }
    };

  registerRollback(program, run);
  registerSagas(program, run);
  registerSchemas(program, run);
  registerDlq(program, run);
  registerPostgres(program, run);
  registerOutboxDeadLetters(program, run);
  registerJournal(program, run);
  for (const cmd of program.commands)
    cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
  for (const cmd of program.commands.flatMap((c) => c.commands)) cmd.exitOverride();
  return program;
}

/**
 * Runs the CLI on `argv` (without the node and script entries) and resolves with the exit code.
 * Never calls `process.exit`.
 */
export async function main(argv: readonly string[]): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.Ok;
  }
  const state = { exitCode: EXIT.Ok as number };
  const program = createProgram(state);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      ) {
        return EXIT.Ok;
      }
      // commander printed the message already; `(outputHelp)` for a bare group command.
      return error.code === 'commander.executeSubCommandAsync' ? EXIT.Error : EXIT.Usage;
    }
    return report(error, argv.includes('--json'));
  }
  return state.exitCode;
}
