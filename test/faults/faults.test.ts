/**
 * The fault suite (see test/faults/README.md): each scenario breaks something real (SIGKILL of a
 * process under test, a broker or Redis restart, hostile input) and checks an external ledger of
 * effects: nothing lost, nothing applied twice, no consumer crash. One file, run sequentially,
 * after the unit and integration projects, so restarting a service never disturbs another test.
 *
 * Run one scenario: `npx vitest run --project faults -t "saga engine"`.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { ensureServices } from './support/services.js';
import { printSummary } from './support/summary.js';
import { badInputScenario } from './scenarios/badInput.js';
import { brokerRestartScenario } from './scenarios/brokerRestart.js';
import { consumerGroupRebalanceScenario } from './scenarios/consumerGroupRebalance.js';
import { consumerKillScenario } from './scenarios/consumerKill.js';
import { redisClusterScenario } from './scenarios/redisCluster.js';
import { hostileProducersScenario } from './scenarios/hostileProducers.js';
import { redisRestartScenario } from './scenarios/redisRestart.js';
import { rollbackKillScenario } from './scenarios/rollbackKill.js';
import { sagaCrashScenario } from './scenarios/sagaCrash.js';
import { sagaOwnershipScenario } from './scenarios/sagaOwnership.js';

const seed = Number(process.env.FAULT_SEED ?? Date.now() % 100_000);

describe(`fault suite (FAULT_SEED=${seed})`, () => {
  beforeAll(async () => {
    // Under CI=true or not: a fault scenario never skips for want of a service; start it.
    await ensureServices();
  });
  afterAll(async () => {
    printSummary();
    // Leave every service running for whoever comes next, whatever happened above.
    await ensureServices();
  });

  describe('scenario 1: consumer killed mid-batch', () => {
    consumerKillScenario({ transport: 'kafka', messages: 1500, kills: 3, seed });
    consumerKillScenario({ transport: 'rabbitmq', messages: 1500, kills: 3, seed: seed + 1 });
    consumerKillScenario({
      transport: 'kafka',
      messages: 1500,
      kills: 3,
      seed: seed + 2,
      store: 'redis-cluster',
    });
    consumerKillScenario({
      transport: 'rabbitmq',
      messages: 1500,
      kills: 3,
      seed: seed + 3,
      store: 'redis-cluster',
    });
  });

  describe('scenario 2: broker restart while publishing and consuming', () => {
    brokerRestartScenario({ transport: 'rabbitmq', messages: 1500, batch: 5 });
    brokerRestartScenario({ transport: 'kafka', messages: 1500, batch: 5 });
  });

  describe('scenario 3: Redis restart (the dedupe store loses its data)', () => {
    redisRestartScenario({ perPhase: 200, outageMs: 3_000, replays: 20 });
    // One master of the private cluster, back within its 5 s node timeout (it keeps its slots).
    redisRestartScenario({
      perPhase: 200,
      outageMs: 3_000,
      replays: 20,
      store: 'redis-cluster',
      seed,
    });
  });

  describe('scenario 4: saga engine killed mid-flight', () => {
    sagaCrashScenario({ store: 'redis', sagas: 1000, kills: 6, seed });
    sagaCrashScenario({ store: 'postgres', sagas: 300, kills: 3, seed: seed + 1 });
  });

  describe('scenario 5: bad input through the real brokers', () => {
    badInputScenario({ generated: 60, seed });
  });

  describe('scenario 6: rollback run killed and resumed', () => {
    rollbackKillScenario({ effects: 200, kills: 4, batchSize: 5, seed });
  });

  describe('scenario 7: foreign and hostile producers', () => {
    hostileProducersScenario({ records: 60, seed });
  });

  describe('scenario 8: consumer group rebalance', () => {
    consumerGroupRebalanceScenario({
      messages: 3000,
      members: 3,
      partitions: 6,
      steps: 3,
      perSecond: 50,
      seed,
    });
  });

  describe('scenario 9: Redis Cluster dedupe store under a duplicate-heavy stream', () => {
    redisClusterScenario({ messages: 1000, consumers: 2, reshardSlots: 500, seed });
  });

  describe('scenario 10: two saga engines on one saga log, one killed', () => {
    sagaOwnershipScenario({ sagas: 36, seed });
  });
});
