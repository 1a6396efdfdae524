/**
 * Child processes for the fault suite: the process under test runs in its own Node process
 * (through tsx, which resolves `@backtrack/*` to the sources with the root tsconfig paths), so
 * the suite can SIGKILL it with no cleanup at all, as a crash or an OOM kill would.
 *
 * Protocol: the child writes lines to stdout; a line `EVENT <name> <json>` is parsed into
 * {@link ChildEvent}s. Everything else (and stderr) is kept for error messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ChildEvent {
  name: string;
  data: Record<string, unknown>;
}

export interface FaultChild {
  readonly process: ChildProcess;
  readonly events: ChildEvent[];
  /** Resolves with the first event named `name` (seen before or after the call). */
  waitFor(name: string, timeoutMs?: number): Promise<ChildEvent>;
  /** SIGKILL: no exit handlers, no flush, no broker goodbye. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** Resolves with the exit code once the child ends on its own. */
  exited(timeoutMs?: number): Promise<number | null>;
  output(): string;
}

/**
 * Starts `script` (a path relative to test/faults/fixtures) with `node --import tsx`, its
 * configuration passed as JSON in the FAULT_CONFIG environment variable.
 */
export function startChild(script: string, config: unknown): FaultChild {
  const path = fileURLToPath(new URL(`../fixtures/${script}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path], {
    cwd: ROOT,
    env: {
      ...process.env,
      FAULT_CONFIG: JSON.stringify(config),
      BACKTRACK_LOG_LEVEL: process.env.FAULT_CHILD_LOG_LEVEL ?? 'silent',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: ChildEvent[] = [];
  const waiters: { name: string; resolve: (e: ChildEvent) => void }[] = [];
  let out = '';
  let err = '';
  let pending = '';
  let exitCode: number | null | undefined;
  const exitWaiters: ((code: number | null) => void)[] = [];

  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    out = (out + text).slice(-20_000);
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const m = /^EVENT (\S+) (.*)$/.exec(line);
      if (!m) continue;
      const event: ChildEvent = { name: m[1]!, data: JSON.parse(m[2]!) as Record<string, unknown> };
      events.push(event);
      for (const w of waiters.filter((x) => x.name === event.name)) w.resolve(event);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err = (err + chunk.toString()).slice(-20_000);
  });
  child.once('exit', (code, signal) => {
    exitCode = code ?? (signal ? -1 : null);
    for (const w of exitWaiters) w(exitCode);
  });

  const output = () =>
    `--- stdout (tail) ---\n${out.slice(-4000)}\n--- stderr (tail) ---\n${err.slice(-4000)}`;

  return {
    process: child,
    events,
    output,
    waitFor(name, timeoutMs = 60_000) {
      const seen = events.find((e) => e.name === name);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(`child ${script} did not report ${name} in ${timeoutMs} ms\n${output()}`),
          );
        }, timeoutMs);
        const onExit = (code: number | null) => {
          clearTimeout(timer);
          reject(new Error(`child ${script} exited (${code}) before ${name}\n${output()}`));
        };
        if (exitCode !== undefined) return onExit(exitCode);
        exitWaiters.push(onExit);
        waiters.push({
          name,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    kill() {
      if (exitCode !== undefined) return Promise.resolve();
      return new Promise((resolve) => {
        exitWaiters.unshift(() => resolve());
        child.kill('SIGKILL');
      });
    },
    exited(timeoutMs = 120_000) {
      if (exitCode !== undefined) return Promise.resolve(exitCode);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`child ${script} did not exit in ${timeoutMs} ms\n${output()}`));
        }, timeoutMs);
        exitWaiters.push((code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
    },
  };
}

/** For fixtures: report an event to the parent. */
export function report(name: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(`EVENT ${name} ${JSON.stringify(data)}\n`);
}

/** For fixtures: the configuration the parent passed. */
export function childConfig<T>(): T {
  const raw = process.env.FAULT_CONFIG;
  if (!raw) throw new Error('FAULT_CONFIG is not set: this script is started by the fault suite');
  return JSON.parse(raw) as T;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stable number in [0, 1) for a string (FNV-1a), for failure decisions that replay alike. */
export function unitHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 13;
  h = Math.imul(h, 0x5bd1e995);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

/** Progress lines for a scenario when FAULT_DEBUG is set (timings relative to its start). */
export function tracer(scenario: string): (what: string) => void {
  const t0 = Date.now();
  return (what) => {
    if (process.env.FAULT_DEBUG)
      process.stderr.write(`[${scenario}] +${Date.now() - t0} ms ${what}\n`);
  };
}
