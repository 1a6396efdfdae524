import type { Benchmark } from '../runner.js';
export const rollbackBenchmark: Benchmark = { id: 'rollback', title: 'todo', async run() {} };
