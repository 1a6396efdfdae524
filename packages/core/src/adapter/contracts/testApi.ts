/**
 * The test runner a contract suite registers its tests with. The suites take it as an argument
 * instead of importing `vitest`, so `@backtrack/core/adapter` loads without a test runner and the
 * suites run under vitest or jest alike: pass `{ describe, it, expect }` from either.
 */
export interface ContractTestApi {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => unknown, timeoutMs?: number): void;
  /** `message` labels a failure (vitest shows it; jest ignores it). */
  expect(actual: unknown, message?: string): ContractAssertion;
}

/** The matchers the contract suites use (a subset both vitest's and jest's `expect` provide). */
export interface ContractAssertion {
  not: ContractAssertion;
  rejects: ContractAsyncAssertion;
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toMatchObject(expected: object): void;
  toBeDefined(): void;
  toBeUndefined(): void;
  toBeNull(): void;
  toBeInstanceOf(expected: unknown): void;
  toBeTypeOf(expected: string): void;
  toBeGreaterThan(expected: number | bigint): void;
  toBeGreaterThanOrEqual(expected: number | bigint): void;
  toBeLessThanOrEqual(expected: number | bigint): void;
  toContain(expected: unknown): void;
  toHaveLength(expected: number): void;
  toMatch(expected: string | RegExp): void;
}

/** `expect(promise).rejects`: the matchers awaited on a rejection. */
export interface ContractAsyncAssertion {
  toMatchObject(expected: object): Promise<void>;
  toBeInstanceOf(expected: unknown): Promise<void>;
  toThrow(expected?: string | RegExp | Error): Promise<void>;
}
