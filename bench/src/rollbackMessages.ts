/**
 * The raw side of the rollback benchmarks publishes what the run publishes: the compensating
 * events `planRollback` plans from the same journal window (the same attributes, so the same
 * headers and bytes: `causationid`, `producerservice` and `producerversion` included), in plan
 * order. Before session 9 the raw side published freshly built cancellations with 3 headers
 * fewer (237 bytes of header text against 377), a lighter message than the run's.
 */
import { planRollback, type EncodedMessage, type Journal } from '@backtrack/core';
import { benchCompensations, benchRegistry } from './common.js';

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
