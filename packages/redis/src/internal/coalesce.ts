import { isCluster, type RedisClient } from './cluster.js';

/** A connection's socket, as far as write coalescing needs it. */
interface Corkable {
  cork(): void;
  uncork(): void;
}

/** The clients whose sockets are held (corked) until the end of the current tick, and those sockets. */
let held: { client: RedisClient; sockets: Corkable[] | Corkable }[] = [];

/**
 * Coalesces the socket writes of the commands sent on `redis` for the rest of this tick: the
 * client's socket (every node's, on a Cluster) is corked now and uncorked on `process.nextTick`,
 * so every command written meanwhile (by any caller of the client) leaves in ONE `writev`
 * instead of one write syscall each. The stores send many small, independent commands at once
 * (a saga transition or a dedupe batch per concurrent saga or consumer, each answered by its own
 * reply): one syscall and one wake-up of the server for all of them costs far less CPU than one
 * each, on both sides. Nothing else changes: each command keeps its own reply, error and order on
 * the connection, and the delay is the rest of the current tick (no timer).
 *
 * Idempotent inside a tick. A socket replaced meanwhile (reconnection) is simply uncorked; a
 * client that is not connected queues commands in ioredis and never writes them here.
 */
export function coalesceWrites(redis: RedisClient): void {
  // A linear scan: a process holds one client or a few, and this runs on every store call.
  for (let i = 0; i < held.length; i++) if (held[i]!.client === redis) return;
  let sockets: Corkable[] | Corkable | undefined;
  if (isCluster(redis)) {
    const list: Corkable[] = [];
    for (const node of redis.nodes()) {
      const socket = corkable(node.stream);
      if (socket !== undefined) list.push(socket);
    }
    if (list.length === 0) return;
    sockets = list;
  } else {
    sockets = corkable(redis.stream);
    if (sockets === undefined) return;
  }
  if (Array.isArray(sockets)) for (const s of sockets) s.cork();
  else sockets.cork();
  if (held.length === 0) process.nextTick(releaseAll);
  held.push({ client: redis, sockets });
}

function releaseAll(): void {
  const all = held;
  held = [];
  for (const { sockets } of all) {
    if (Array.isArray(sockets)) for (const s of sockets) s.uncork();
    else sockets.uncork();
  }
}

function corkable(stream: unknown): Corkable | undefined {
  const s = stream as Partial<Corkable> | undefined | null;
  return s != null && typeof s.cork === 'function' && typeof s.uncork === 'function'
    ? (s as Corkable)
    : undefined;
}
