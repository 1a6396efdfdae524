import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { BacktrackError } from '@backtrack/core';
import { registerDlq } from './commands/dlq.js';
import { registerJournal } from './commands/journal.js';
import { registerOutboxDeadLetters } from './commands/outboxDeadLetters.js';
import { registerPostgres } from './commands/postgres.js';
import { registerRollback } from './commands/rollback.js';
import { registerSagas } from './commands/sagas.js';
import { registerSchemas } from './commands/schemas.js';
import { registerUi } from './commands/ui.js';
import { loadConfig } from './config.js';
import { CliContext, messageOf, redact, type GlobalOptions } from './context.js';
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
  // No password of a connection URL (Redis, AMQP, PostgreSQL) in any error the CLI prints.
  const message = redact(messageOf(error));
  if (hint) hint = redact(hint);
  // Details are data from the error (a URL among them, sometimes): redacted the same way.
  if (details) details = JSON.parse(redact(JSON.stringify(details))) as Record<string, unknown>;
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
      process.stderr.write(`${redact((error as Error)?.stack ?? '')}\n`);
    }
  }
  return exit;
}

/**
 * Options every command accepts, before or after the subcommand (`backtrack --json sagas list`
 * and `backtrack sagas list --json` are the same).
 */
const GLOBAL_OPTIONS: [flags: string, description: string][] = [
  [
    '--config <file>',
    'config module exporting registry, compensations, sagas (default: ./backtrack.config.mjs|js|ts, env BACKTRACK_CONFIG)',
  ],
  ['--json', 'machine-readable JSON on stdout'],
  [
    '--redis-url <url>',
    'Redis for the journal, rollback progress and sagas (default: env REDIS_URL, config redis.url, redis://127.0.0.1:6379)',
  ],
  ['--transport <kind>', 'kafka or rabbitmq (default: env BACKTRACK_TRANSPORT, config transport)'],
  [
    '--kafka-brokers <list>',
    'comma-separated host:port (default: env KAFKA_BROKERS, config kafka.brokers, 127.0.0.1:9092)',
  ],
  [
    '--amqp-url <url>',
    'RabbitMQ URL (default: env AMQP_URL, config rabbitmq.url, amqp://guest:guest@127.0.0.1:5672)',
  ],
];

/** One example per command, shown at the end of its help. */
const EXAMPLES: Record<string, string> = {
  'rollback plan':
    'backtrack rollback plan --service payments --version 1.1.0 --strategy compensate --out plan.json',
  'rollback run': 'backtrack rollback run --plan plan.json',
  'rollback resume': 'backtrack rollback resume run-7f3a',
  'rollback status': 'backtrack rollback status run-7f3a',
  'sagas list': 'backtrack sagas list --status stuck',
  'sagas show': 'backtrack sagas show order-1',
  'sagas retry': 'backtrack sagas retry order-1',
  'sagas resolve':
    'backtrack sagas resolve order-1 --step charge-card --reason "refunded by hand, ticket 123"',
  'sagas recover': 'backtrack sagas recover',
  'sagas prune': 'backtrack sagas prune --older-than 30d',
  'journal prune': 'backtrack journal prune --older-than 7d',
  'schemas check': 'backtrack schemas check --snapshot backtrack.schemas.json --required FULL',
  'schemas snapshot': 'backtrack schemas snapshot --out backtrack.schemas.json --label 2.4.0',
  'dlq list': 'backtrack dlq list --transport kafka --topic orders.dlq --limit 20',
  'dlq redrive': 'backtrack dlq redrive --transport kafka --topic orders.dlq --code BT_ERR_HANDLER',
  ui: 'backtrack ui --transport rabbitmq --dead-letters orders.dlq',
  'postgres migrate':
    'backtrack postgres migrate --database-url postgres://app@db/app --schema orders',
};

/** Help of the leaf commands: required options marked, global options accepted, an example. */
function finishCommand(cmd: Command, path: string): void {
  for (const option of cmd.options) {
    if (option.mandatory && !option.description.endsWith('(required)'))
      option.description = `${option.description} (required)`;
  }
  const own = new Set(cmd.options.map((o) => o.long));
  for (const [flags, description] of GLOBAL_OPTIONS) {
    const option = new Option(flags, description).hideHelp();
    if (!own.has(option.long)) cmd.addOption(option);
  }
  const example = EXAMPLES[path];
  if (example) cmd.addHelpText('after', `\nExample:\n  $ ${example}\n`);
}

/** Builds the `backtrack` program. Exposed for tests and for embedding in your own CLI. */
export function createProgram(state: { exitCode: number }): Command {
  const program = new Command('backtrack')
    .description(
      'Undo and redo what a bad deploy published: rollbacks, sagas, schemas, dead letters',
    )
    .version(VERSION, '-V, --cli-version', 'print the CLI version')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();
  for (const [flags, description] of GLOBAL_OPTIONS) program.option(flags, description);
  program.addHelpText(
    'after',
    '\nGlobal options go before or after the command. Example:\n  $ backtrack sagas list --config backtrack.config.mjs\n',
  );

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
  registerUi(program, run);
  for (const cmd of program.commands)
    cmd.exitOverride().showHelpAfterError('(run with --help for usage)');
  for (const group of program.commands) {
    // A command without subcommands (`ui`) is a leaf itself.
    if (group.commands.length === 0) finishCommand(group, group.name());
    for (const cmd of group.commands) {
      cmd.exitOverride();
      finishCommand(cmd, `${group.name()} ${cmd.name()}`);
    }
  }
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
