/**
 * The raw side of the rollback benchmarks publishes what the run publishes: the compensating
 * events `planRollback` plans from the same journal window (the same attributes, so the same
 * headers and bytes: `causationid`, `producerservice` and `producerversion` included), in plan
 * order. Before session 9 the raw side published freshly built cancellations with 3 headers
 * fewer (237 bytes of header text against 377), a lighter message than the run's.
 */
import { planRollback, type EncodedMessage, type Journal } from '@backtrack/core';
import { benchCompensations, benchRegistry, encodedOrders, runConcurrently } from './common.js';

/**
 * A bad deploy's effects, the set-up of the rollback benchmarks: `n` order events journaled as
 * `service` at `version` on `topic` (32 appends at once, keyed `o-<i>`).
 */
export async function journalBadDeploy(
  journal: Journal,
  n: number,
  where: { service: string; version: string; topic: string },
): Promise<void> {
  const messages = encodedOrders(n, `//bench/${where.service}`);
  await runConcurrently(n, 32, (i) => {
    const m = messages[i]!;
    return journal.append({
      id: m.headers.id!,
      type: m.headers.type!,
      schemaVersion: 1,
      key: `o-${i}`,
      topic: where.topic,
      service: where.service,
      version: where.version,
      time: m.headers.time!,
      message: m,
    });
  });
}

export async function rollbackMessagesOf(
  journal: Journal,
  service: string,
  version: string,
): Promise<EncodedMessage[]> {
  const plan = await planRollback(
    { service, version, strategy: 'compensate' },
    { journal, registry: benchRegistry, compensations: benchCompensations },
  );
  return plan.items.flatMap((item) =>
    item.messages.map((m) => ({
      headers: { ...m.headers },
      body: new Uint8Array(Buffer.from(m.body, 'base64')),
    })),
  );
}
