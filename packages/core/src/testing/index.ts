/** @backtrack/core/testing: in-memory fakes, contract suites and the saga crash harness. */
export {};
