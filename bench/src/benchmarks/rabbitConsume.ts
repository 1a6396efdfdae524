import type { Benchmark } from '../runner.js';
export const rabbitConsumeBenchmark: Benchmark = { id: 'rabbitConsume', title: 'todo', async run() {} };
