import type { Benchmark } from '../runner.js';
export const kafkaPublishBenchmark: Benchmark = { id: 'kafkaPublish', title: 'todo', async run() {} };
