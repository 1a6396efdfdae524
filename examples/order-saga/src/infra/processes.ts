/**
 * Participant services in child processes, for the load driver's `--processes K`: inventory,
 * payments and shipping run in K children each (layout `per-service`: 3K processes) or all three
 * in each of K children (layout `shared`: K processes), bin/worker.ts on the parent's prefix, so
 * the K members of a service are in one consumer group (Kafka: they share the partitions;
 * RabbitMQ: competing consumers on the service's queue).
 *
 * The orders service is not forked: it runs the saga engine, and its reply consumer must be in
 * the process whose saga waits for the reply (a reply delivered to another member would be
 * dropped and the step would time out), and one process owns recovery. It stays in the parent.
 *
 * The protocol over the IPC channel (`WorkerMessage` / `ParentMessage`): a child says `ready`
 * once its subscription is up; the parent asks for `cpu` (the child's `process.cpuUsage()`) and
 * says `stop`; the child closes its subscription and connections, answers `stopped` with its CPU,
 * and exits. A child whose parent goes away (the IPC channel closes: a crash, a SIGKILL) stops by
 * itself, so no child outlives the run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The services the load driver forks (orders stays in the parent, see above). */
export const FORKED_SERVICES = ['inventory', 'payments', 'shipping'] as const;
export type ForkedService = (typeof FORKED_SERVICES)[number];

/** How the participants are spread over the children. */
export type ProcessLayout = 'per-service' | 'shared';
export const PROCESS_LAYOUTS: readonly ProcessLayout[] = ['per-service', 'shared'];

/** A child's messages; `services` names what it runs (`inventory`, or `inventory+payments+shipping`). */
export type WorkerMessage =
  | { type: 'ready'; services: string; pid: number }
  | { type: 'cpu'; services: string; user: number; system: number }
  | { type: 'stopped'; services: string; user: number; system: number }
  | { type: 'failed'; services: string; error: string };

export type ParentMessage = { type: 'cpu' } | { type: 'stop' };

export interface ServiceProcessesOptions {
  /** Children per service (`per-service`), or children each running every service (`shared`). */
  processes: number;
  /** @default 'per-service' */
  layout?: ProcessLayout;
  /** The topology and transport flags every child gets (`--transport kafka --prefix ...`). */
  args: string[];
  /** @default FORKED_SERVICES */
  services?: readonly ForkedService[];
  /** How long to wait for every child to be ready, in ms. @default 60_000 */
  readyTimeoutMs?: number;
  /** Where the children's stdout and stderr go. @default 'inherit' (the parent's) */
  stdio?: 'inherit' | 'ignore';
}

export interface ServiceProcesses {
  readonly pids: readonly number[];
  /**
   * Child CPU (user + system) in µs so far, summed over the children that run the same services,
   * keyed by what they run (`inventory`, ..., or `inventory+payments+shipping`).
   */
  cpu(): Promise<Record<string, number>>;
  /** Stops every child (SIGKILL after `timeoutMs`); resolves when all have exited. */
  stop(timeoutMs?: number): Promise<void>;
}

const WORKER = fileURLToPath(new URL('../bin/worker.ts', import.meta.url));

/**
 * The children's `execArgv`: the parent's (under `tsx`, its loader; `--cpu-prof` too, so a
 * profiled run profiles every child), with `--import tsx` added when the parent runs without
 * tsx (a test runner), since the worker is TypeScript.
 */
function childExecArgv(): string[] {
  const inherited = process.execArgv;
  return inherited.some((a) => a.includes('tsx')) ? inherited : [...inherited, '--import', 'tsx'];
}

/** Sends without throwing: a child that is exiting is seen by its `exit` event instead. */
function send(c: Child, message: ParentMessage): void {
  c.process.send(message, () => undefined);
}

interface Child {
  /** What it runs: `inventory`, or `inventory+payments+shipping`. */
  services: string;
  process: ChildProcess;
  exited: Promise<void>;
}

/** Forks K children per service and resolves once every one of them is ready. */
export async function startServiceProcesses(
  options: ServiceProcessesOptions,
): Promise<ServiceProcesses> {
  const services = options.services ?? FORKED_SERVICES;
  const units =
    (options.layout ?? 'per-service') === 'shared'
      ? [services.join('+')]
      : services.map((s) => s as string);
  const children: Child[] = [];
  const killAll = () => {
    for (const c of children) if (c.process.exitCode === null) c.process.kill('SIGKILL');
  };
  // Last resort: the parent exits (process.exit, an uncaught error) with children still up.
  process.once('exit', killAll);

  const stop = async (timeoutMs = 10_000) => {
    for (const c of children) {
      if (c.process.connected) send(c, { type: 'stop' });
      else if (c.process.exitCode === null) c.process.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      (r) => (timer = setTimeout(() => r('timeout'), timeoutMs)),
    );
    const all = Promise.all(children.map((c) => c.exited));
    if ((await Promise.race([all, timeout])) === 'timeout') killAll();
    await all;
    clearTimeout(timer);
    process.removeListener('exit', killAll);
  };

  const readiness: Promise<void>[] = [];
  for (const service of units) {
    for (let i = 0; i < options.processes; i++) {
      const child = fork(WORKER, ['--services', service, ...options.args], {
        execArgv: childExecArgv(),
        stdio: options.stdio === 'ignore' ? ['ignore', 'ignore', 'ignore', 'ipc'] : 'inherit',
      });
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      children.push({ services: service, process: child, exited });
      readiness.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (message: WorkerMessage) => {
            if (message.type === 'ready') done(undefined);
            if (message.type === 'failed')
              done(new Error(`${service} process failed: ${message.error}`));
          };
          const onExit = (code: number | null, signal: string | null) =>
            done(new Error(`${service} process exited before it was ready (${signal ?? code})`));
          const done = (error: Error | undefined) => {
            child.off('message', onMessage);
            child.off('exit', onExit);
            if (error) reject(error);
            else resolve();
          };
          child.on('message', onMessage);
          child.once('exit', onExit);
        }),
      );
    }
  }

  let timer: NodeJS.Timeout | undefined;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  try {
    await Promise.race([
      Promise.all(readiness),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`service processes not ready after ${readyTimeoutMs} ms`)),
          readyTimeoutMs,
        );
      }),
    ]);
  } catch (error) {
    // Every readiness promise gets a handler, so the ones still pending cannot reject unhandled.
    for (const r of readiness) r.catch(() => undefined);
    await stop(5_000);
    throw error;
  } finally {
    clearTimeout(timer);
  }

  return {
    pids: children.map((c) => c.process.pid!),
    async cpu() {
      const answers = await Promise.all(
        children.map(
          (c) =>
            new Promise<{ services: string; us: number }>((resolve, reject) => {
              const onMessage = (message: WorkerMessage) => {
                if (message.type !== 'cpu') return;
                c.process.off('message', onMessage);
                c.process.off('exit', onExit);
                resolve({
                  services: c.services,
                  us: message.user + message.system,
                });
              };
              const onExit = () => reject(new Error(`${c.services} process exited`));
              c.process.on('message', onMessage);
              c.process.once('exit', onExit);
              send(c, { type: 'cpu' });
            }),
        ),
      );
      const total: Record<string, number> = {};
      for (const { services, us } of answers) total[services] = (total[services] ?? 0) + us;
      return total;
    },
    stop,
  };
}
