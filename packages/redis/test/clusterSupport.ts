/**
 * A local Redis Cluster for the tests: three masters started by scripts/redis-cluster/start from
 * the installed redis-server (127.0.0.1:7001-7003), or the nodes in REDIS_CLUSTER_NODES.
 * Started when it is not up (local default nodes only). Where it cannot be had, a local run
 * skips loudly and a run with CI=true (or CI=1) fails: integration tests never skip in CI.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis, type Cluster } from 'ioredis';
import { createRedisClusterClient } from '@backtrack/redis';
import { globEscape, scanKeys, unlinkKeys } from '../src/internal/cluster.js';

const START = fileURLToPath(new URL('../../../scripts/redis-cluster/start', import.meta.url));

export interface RedisClusterInfo {
  available: boolean;
  nodes: string[];
  reason?: string;
}

/** Seed nodes: REDIS_CLUSTER_NODES (comma-separated host:port) or the project script's. */
export function clusterNodes(): string[] {
  const env = process.env.REDIS_CLUSTER_NODES?.split(',').filter((n) => n.trim() !== '');
  return env && env.length > 0 ? env : ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'];
}

async function clusterOk(node: string): Promise<boolean> {
  const [host, port] = node.split(':');
  const probe = new Redis({
    host,
    port: Number(port),
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const info = await probe.call('CLUSTER', 'INFO');
    return String(info).includes('cluster_state:ok');
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Makes sure a cluster answers (starting the project's when needed); see the file comment. */
export async function ensureRedisCluster(): Promise<RedisClusterInfo> {
  const nodes = clusterNodes();
  if (await clusterOk(nodes[0]!)) return { available: true, nodes };
  let reason = `no Redis Cluster answers on ${nodes.join(', ')}`;
  if (process.env.REDIS_CLUSTER_NODES === undefined) {
    try {
      await promisify(execFile)(START, [], { timeout: 120_000 });
      if (await clusterOk(nodes[0]!)) return { available: true, nodes };
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      reason += `; scripts/redis-cluster/start failed: ${e.stderr?.trim() || e.message}`;
    }
  }
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${reason}: integration tests never skip under CI=true`);
  }
  console.warn(`\n!!! SKIPPING Redis Cluster tests: ${reason}\n`);
  return { available: false, nodes, reason };
}

/** A Cluster client on the test cluster, with the stores' fail-fast settings. */
export async function openCluster(nodes = clusterNodes()): Promise<Cluster> {
  const cluster = createRedisClusterClient(nodes);
  await new Promise<void>((resolve, reject) => {
    cluster.once('ready', resolve);
    cluster.once('error', reject);
  });
  return cluster;
}

/** Deletes every key under `prefix` on every master. */
export async function deleteClusterPrefix(cluster: Cluster, prefix: string): Promise<number> {
  return unlinkKeys(cluster, await scanKeys(cluster, `${globEscape(prefix)}*`));
}

/** Per-master totals of `INFO commandstats` calls for `commands`, keyed by `host:port`. */
export async function commandCalls(
  cluster: Cluster,
  commands: readonly string[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const node of cluster.nodes('master')) {
    const stats = await node.info('commandstats');
    let total = 0;
    for (const command of commands) {
      const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats);
      total += m ? Number(m[1]) : 0;
    }
    out.set(`${node.options.host}:${node.options.port}`, total);
  }
  return out;
}

/** Per-master key counts under `prefix` (SCAN on each master). */
export async function keysPerMaster(
  cluster: Cluster,
  prefix: string,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const node of cluster.nodes('master')) {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(
        cursor,
        'MATCH',
        `${globEscape(prefix)}*`,
        'COUNT',
        1000,
      );
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    out.set(`${node.options.host}:${node.options.port}`, n);
  }
  return out;
}
