/**
 * The Redis Cluster of the fault suite's cluster scenarios: the project's private 3-master
 * cluster (scripts/redis-cluster/start, 127.0.0.1:7001-7003, or REDIS_CLUSTER_NODES), never the
 * shared Redis. A scenario may restart one of its nodes ({@link stopClusterNode}); nothing here
 * touches any other service.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis, type Cluster } from 'ioredis';
import {
  deleteClusterPrefix,
  ensureRedisCluster,
  keysPerMaster,
  openCluster,
} from '../../../packages/redis/test/clusterSupport.js';
import { slotOf } from '../../../packages/redis/src/internal/cluster.js';
import { sleep } from './child.js';

const exec = promisify(execFile);

/** The cluster's seed nodes, starting it when none answers; throws when it cannot be had. */
export async function requireRedisCluster(): Promise<string[]> {
  const cluster = await ensureRedisCluster();
  // Under CI=true ensureRedisCluster throws when no cluster can be had; locally it says why.
  if (!cluster.available) throw new Error(`no Redis Cluster: ${cluster.reason}`);
  return cluster.nodes;
}

export { deleteClusterPrefix, keysPerMaster, openCluster };

/** The masters and the hash slots each serves, keyed by `host:port`. */
export async function slotOwners(cluster: Cluster): Promise<(slot: number) => string> {
  const ranges = (await cluster.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
  const owner = new Array<string>(16_384);
  for (const [from, to, [host, port]] of ranges) {
    for (let s = from; s <= to; s++) owner[s] = `${host}:${port}`;
  }
  return (slot) => owner[slot] ?? 'unassigned';
}

/** The master (`host:port`) that holds `key`, for a map made by {@link slotOwners}. */
export function ownerOf(owners: (slot: number) => string, key: string): string {
  return owners(slotOf(key));
}

function node(address: string): Redis {
  const [host, port] = address.split(':');
  const r = new Redis({
    host,
    port: Number(port),
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => undefined);
  return r;
}

async function clusterStateOk(address: string): Promise<boolean> {
  const r = node(address);
  try {
    await r.connect();
    return String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/**
 * Shuts one cluster master down with `SHUTDOWN NOSAVE` (its keys are gone: the cluster keeps
 * nothing on disk but its layout, nodes.conf) and returns how to start it again: the same
 * redis-server command line it ran with (read from the node itself, so it does not matter which
 * checkout's script started it), resolving once the whole cluster says `cluster_state:ok`. A
 * master back within the cluster's node timeout keeps its slots (no replica takes over).
 */
export async function stopClusterNode(address: string): Promise<() => Promise<void>> {
  const [host, port] = address.split(':') as [string, string];
  const r = node(address);
  await r.connect();
  const config = async (name: string) => ((await r.config('GET', name)) as string[])[1] ?? '';
  const args = [
    '--port',
    port,
    '--bind',
    (await config('bind')) || host,
    '--dir',
    await config('dir'),
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    await config('cluster-config-file'),
    '--cluster-node-timeout',
    await config('cluster-node-timeout'),
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'yes',
    '--pidfile',
    await config('pidfile'),
    '--logfile',
    await config('logfile'),
  ];
  await r.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
  r.disconnect();
  const until = Date.now() + 20_000;
  while (await canPing(address)) {
    if (Date.now() > until) throw new Error(`cluster node ${address} did not stop`);
    await sleep(50);
  }
  let started = false;
  return async () => {
    if (!started) {
      started = true;
      await exec('redis-server', args, { timeout: 30_000 });
    }
    const deadline = Date.now() + 60_000;
    while (!(await clusterStateOk(address))) {
      if (Date.now() > deadline) throw new Error(`cluster node ${address} did not rejoin`);
      await sleep(100);
    }
  };
}

async function canPing(address: string): Promise<boolean> {
  const r = node(address);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}
