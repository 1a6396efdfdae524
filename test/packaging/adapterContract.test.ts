/**
 * A store written against `@backtrack/core/adapter` alone passes the published contract suite:
 * fixtures/thirdPartyDedupeStore.ts imports only that entry, and this file runs the suite from
 * the same entry with vitest's `describe`/`it`/`expect` passed in, as a third party's test would.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dedupeStoreContract } from '@backtrack/core/adapter';
import { ThirdPartyDedupeStore } from './fixtures/thirdPartyDedupeStore.js';

describe('a third-party store', () => {
  it('imports nothing of Backtrack but @backtrack/core/adapter', () => {
    const source = readFileSync(
      new URL('./fixtures/thirdPartyDedupeStore.ts', import.meta.url),
      'utf8',
    );
    const modules = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(modules.filter((m) => !m!.startsWith('node:'))).toEqual(['@backtrack/core/adapter']);
  });
});

dedupeStoreContract(
  'ThirdPartyDedupeStore (written against @backtrack/core/adapter)',
  async () => {
    let now = 1_800_000_000_000;
    const store = new ThirdPartyDedupeStore(() => now);
    return {
      store,
      ttlOf: async (key) => store.ttlOf(key),
      advance: async (ms) => {
        now += ms;
      },
    };
  },
  { describe, it, expect },
);
