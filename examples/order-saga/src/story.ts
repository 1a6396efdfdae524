/**
 * The user-facing narration of the example: one line per thing a service did, grouped by
 * order. This is deliberately not the library's log (that is pino, at `warn` in the example):
 * it is what a person watching the demo wants to read.
 */

export type StoryMark = 'start' | 'ok' | 'fail' | 'undo' | 'done' | 'cancelled' | 'info';

export interface StoryLine {
  orderId: string;
  service: 'orders' | 'inventory' | 'payments' | 'shipping' | 'rollback' | 'checker';
  mark: StoryMark;
  text: string;
}

/** Where services report what they did. */
export interface Story {
  tell(line: StoryLine): void;
}

/** A story nobody listens to (the load driver and the drill use it). */
export const SILENT_STORY: Story = { tell: () => undefined };

const useColor = () => process.stdout.isTTY === true && process.env.NO_COLOR === undefined;

const paint = (code: number, text: string) => (useColor() ? `\x1b[${code}m${text}\x1b[0m` : text);

/** Terminal colours that turn themselves off when stdout is not a terminal or NO_COLOR is set. */
export const color = {
  green: (t: string) => paint(32, t),
  red: (t: string) => paint(31, t),
  yellow: (t: string) => paint(33, t),
  cyan: (t: string) => paint(36, t),
  dim: (t: string) => paint(2, t),
  bold: (t: string) => paint(1, t),
};

const MARKS: Record<StoryMark, () => string> = {
  start: () => color.bold('●'),
  ok: () => color.green('✓'),
  fail: () => color.red('✗'),
  undo: () => color.yellow('↩'),
  done: () => color.green('→'),
  cancelled: () => color.yellow('→'),
  info: () => color.dim('·'),
};

/** Prints each line as it happens: `  ✓ inventory  reserved 2 × blue-mug`. */
export function consoleStory(write: (text: string) => void = (t) => console.log(t)): Story {
  return {
    tell({ service, mark, text }) {
      if (mark === 'start') {
        write('');
        write(`${MARKS.start()} ${color.bold(text)}`);
        return;
      }
      write(`  ${MARKS[mark]()} ${color.cyan(service.padEnd(9))}  ${text}`);
    },
  };
}

/** Keeps the lines, for tests. */
export function recordingStory(): Story & { lines: StoryLine[] } {
  const lines: StoryLine[] = [];
  return { lines, tell: (line) => lines.push(line) };
}

/** `€24.00` */
export function euros(cents: number): string {
  return `€${(cents / 100).toFixed(2)}`;
}
