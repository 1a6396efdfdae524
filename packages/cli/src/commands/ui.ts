import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import type { Output } from '../output.js';

type Run = (
  fn: (ctx: CliContext, out: Output, cmd: Command) => Promise<number | void>,
) => (...args: unknown[]) => Promise<void>;

interface UiFlags {
  host: string;
  port: number;
  deadLetters?: string;
  operator?: string;
  pollMs?: number;
}

const portNumber = (value: string) => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65_535)
    throw new CliError(`--port must be 0..65535, got "${value}"`, EXIT.Usage);
  return n;
};

export function registerUi(program: Command, run: Run): void {
  program
    .command('ui')
    .description(
      'serve the operator console: stuck sagas, rollback runs, dead letters, schemas (Ctrl-C stops it)',
    )
    .option('--host <host>', 'address to bind; anything but loopback requires a token', '127.0.0.1')
    .option('--port <port>', 'port (0: any free port)', portNumber, 7420)
    .option(
      '--dead-letters <list>',
      'dead-letter queues (RabbitMQ) or topics (Kafka) to show, comma-separated',
    )
    .option('--operator <name>', 'who acts, when the page does not say (default: the OS user)')
    .option('--poll-ms <ms>', 'how often open pages are updated', (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 200)
        throw new CliError(`--poll-ms must be an integer >= 200, got "${v}"`, EXIT.Usage);
      return n;
    })
    .addHelpText(
      'after',
      '\nThe token: env BACKTRACK_UI_TOKEN, else one is generated and printed when --host is not loopback.\n',
    )
    .action(
      run(async (ctx, out, cmd) => {
        const flags = cmd.opts<UiFlags>();
        const { createConsole } = await import('../ui/server.js');
        const server = await createConsole(ctx, {
          host: flags.host,
          port: flags.port,
          operator: flags.operator,
          pollMs: flags.pollMs,
          deadLetters: flags.deadLetters
            ?.split(',')
            .map((d) => d.trim())
            .filter(Boolean),
        });
        const url = await server.listen();
        const open = server.token ? `${url}/#token=${server.token}` : url;
        out.result({ url, tokenRequired: Boolean(server.token) }, () =>
          [
            `Backtrack console: ${open}`,
            server.token
              ? 'Every request needs the token (in the link above; keep it to yourself).'
              : 'Bound to loopback: only this machine can reach it.',
            'Ctrl-C stops it.',
          ].join('\n'),
        );
        if (server.token && out.json) process.stderr.write(`token: ${server.token}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await server.close();
      }),
    );
}
