import { redactSecrets, redactText } from '@backtrack/core';

/** Printing: JSON for scripts (`--json`), aligned text for people. */
export interface Output {
  readonly json: boolean;
  /** Prints a result: JSON as is, otherwise through `human`. */
  result(value: unknown, human: () => string): void;
  info(line: string): void;
  warn(line: string): void;
}

/** Everything printed goes through core's redaction: no password, SASL setting or key leaves. */
export function createOutput(json: boolean): Output {
  return {
    json,
    result(value, human) {
      process.stdout.write(
        json
          ? `${redactText(JSON.stringify(redactSecrets(value), null, 2))}\n`
          : `${redactText(human())}\n`,
      );
    },
    info(line) {
      if (!json) process.stdout.write(`${redactText(line)}\n`);
    },
    warn(line) {
      process.stderr.write(`${redactText(line)}\n`);
    },
  };
}

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined ? '' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (c ?? '').padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
