/**
 * Counts the round trips an ioredis client makes: every command sent on its own is one, a
 * pipeline or MULTI/EXEC (however many commands it holds) is one. It wraps the client's own
 * methods, so it counts exactly what the code under test sends, nothing else on the server.
 */
import type { Redis } from 'ioredis';

export interface RoundTripCounter {
  /** Round trips since the last reset. */
  readonly roundTrips: number;
  /** Commands since the last reset (a pipeline counts each command it holds). */
  readonly commands: number;
  /** Commands by name (lower case). */
  readonly byCommand: Readonly<Record<string, number>>;
  reset(): void;
}

export function countRoundTrips(redis: Redis): RoundTripCounter {
  const state = { roundTrips: 0, commands: 0, byCommand: {} as Record<string, number> };
  const target = redis as unknown as {
    sendCommand: (command: { name: string }, stream?: unknown, node?: unknown) => unknown;
    pipeline: (...args: unknown[]) => { exec: (...a: unknown[]) => unknown };
    multi: (...args: unknown[]) => { exec: (...a: unknown[]) => unknown };
  };
  const send = target.sendCommand.bind(redis);
  target.sendCommand = (command, stream, node) => {
    state.commands++;
    state.byCommand[command.name] = (state.byCommand[command.name] ?? 0) + 1;
    // Commands of a pipeline are written with the pipeline's stream: counted once by its exec.
    if (stream === undefined) state.roundTrips++;
    return send(command, stream, node);
  };
  for (const method of ['pipeline', 'multi'] as const) {
    const original = target[method].bind(redis);
    target[method] = (...args: unknown[]) => {
      const pipeline = original(...args);
      const exec = pipeline.exec.bind(pipeline);
      pipeline.exec = (...a: unknown[]) => {
        state.roundTrips++;
        return exec(...a);
      };
      return pipeline;
    };
  }
  return {
    get roundTrips() {
      return state.roundTrips;
    },
    get commands() {
      return state.commands;
    },
    get byCommand() {
      return state.byCommand;
    },
    reset() {
      state.roundTrips = 0;
      state.commands = 0;
      state.byCommand = {};
    },
  };
}
