import { Option, type Command } from 'commander';
import type { CliContext } from '../context.js';
import type { Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

const DEFAULT_SNAPSHOT = 'backtrack.schemas.json';

export function registerSchemas(program: Command, run: Run): void {
  const schemas = program
    .command('schemas')
    .description('event schema snapshots and compatibility checks');

  schemas
    .command('check')
    .description('compare your registry with a saved snapshot (exit 5 when incompatible)')
    .option(
      '--snapshot <file>',
      `the saved snapshot (default: config schemaSnapshot, then ./${DEFAULT_SNAPSHOT})`,
    )
    .addOption(
      new Option('--required <level>', 'compatibility every type must reach')
        .choices(['BACKWARD', 'FORWARD', 'FULL', 'NONE'])
        .default('BACKWARD'),
    )
    .option('--transitive', 'check every step of each version chain, not only the new ones')
    .action(
      run(async (ctx, out, cmd) => (await import('./schemasImpl.js')).check(ctx, out, cmd.opts())),
    );

  schemas
    .command('snapshot')
    .description('save your registry as a snapshot for later checks')
    .option(
      '--out <file>',
      `where to write it (default: config schemaSnapshot, then ./${DEFAULT_SNAPSHOT})`,
    )
    .option('--label <text>', 'a label, for example the release version')
    .action(
      run(async (ctx, out, cmd) =>
        (await import('./schemasImpl.js')).snapshot(ctx, out, cmd.opts()),
      ),
    );
}
