import type { Benchmark } from '../runner.js';
export const rabbitPublishBenchmark: Benchmark = { id: 'rabbitPublish', title: 'todo', async run() {} };
