/**
 * The TypeScript blocks of README.md and packages/*\/README.md type-check, so they cannot rot:
 * each ```ts block becomes a module under .cache/readme-snippets/ and one `tsc --noEmit` run
 * checks them all against the packages' sources. A block that is deliberately a fragment (it
 * uses names the text around it introduces: `registry`, `transport`, `envelope`, ...) says so in
 * its info string (```ts partial): in it, errors that only say a name is not declared (and what
 * follows from that: an implicit any, an unknown) are allowed; every other error still fails, so
 * a fragment that misuses the API is caught too.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = join(root, '.cache', 'readme-snippets');

interface Snippet {
  file: string;
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  partial: boolean;
}

/** Cannot find name, shorthand without a value, implicit any, 'x' is of type 'unknown'. */
const CONTEXT_ERRORS = new Set(['TS2304', 'TS18004', 'TS7006', 'TS7031', 'TS18046', 'TS2552']);

function readmes(): string[] {
  const packages = readdirSync(join(root, 'packages')).map((p) =>
    join(root, 'packages', p, 'README.md'),
  );
  return [join(root, 'README.md'), ...packages].filter((f) => {
    try {
      readFileSync(f);
      return true;
    } catch {
      return false;
    }
  });
}

/** Writes one module per ```ts block; returns where each came from. */
function extract(): Snippet[] {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const snippets: Snippet[] = [];
  for (const readme of readmes()) {
    const lines = readFileSync(readme, 'utf8').split('\n');
    const name = relative(root, readme).replace(/[/.]/g, '_');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(ts|typescript)\b(.*)$/.exec(lines[i]!);
      if (!open) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && !lines[end]!.startsWith('```')) end++;
      const file = join(out, `${name}_L${start}.ts`);
      // `export {}` makes it a module: top-level await and no clashes between blocks.
      writeFileSync(file, `${lines.slice(start, end).join('\n')}\nexport {};\n`);
      snippets.push({
        file,
        readme: relative(root, readme),
        line: start,
        partial: /\bpartial\b/.test(open[2]!),
      });
      i = end;
    }
  }
  writeFileSync(
    join(out, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { noEmit: true, noUnusedLocals: false },
      include: ['*.ts'],
    }),
  );
  return snippets;
}

describe('README TypeScript blocks', () => {
  it('type-check (blocks marked `ts partial` may use names they do not declare)', async () => {
    const snippets = extract();
    expect(snippets.length).toBeGreaterThan(10);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const errors = await promisify(execFile)(process.execPath, [tsc, '-p', out], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    }).then(
      () => '',
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    // Point each error at its README line; drop the context errors of partial blocks.
    const located = errors
      .split('\n')
      .filter((line) => /error TS\d+/.test(line))
      .flatMap((line) => {
        const hit = snippets.find((s) => line.includes(`${s.file.split('/').at(-1)}(`));
        const at = /\.ts\((\d+),/.exec(line);
        const code = /error (TS\d+)/.exec(line)?.[1] ?? '';
        if (hit?.partial && CONTEXT_ERRORS.has(code)) return [];
        return hit && at
          ? [`${hit.readme}:${hit.line + Number(at[1])}: ${line.replace(/^.*?: error /, 'error ')}`]
          : [line];
      });
    expect(located).toEqual([]);
  }, 180_000);
});
