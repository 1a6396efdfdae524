import { LuaScript } from '../internal/LuaScript.js';

/*
 * Values stored under a dedupe key:
 *   'p:' .. token     a live claim (lease = the key's PX expiry)
 *   'd'               done, no result
 *   'd:' .. result    done, with a result
 * Every write sets an expiry: a lease never outlives leaseMs, a done mark never outlives ttlMs.
 */

/**
 * Claims every key in KEYS in one atomic call. ARGV[1] = leaseMs, ARGV[1 + i] = the token for
 * KEYS[i]. Answers per key: 'c' claimed, 'i' in progress, or the done value ('d' / 'd:result').
 * `SET NX PX` is the claim itself; the GET after a refused SET runs in the same script, so no
 * other client can change the key in between.
 */
export const CLAIM = new LuaScript(
  'backtrack.dedupe.claim',
  `
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, 'p:' .. ARGV[i + 1], 'NX', 'PX', ARGV[1]) then
    out[i] = 'c'
  else
    local cur = redis.call('GET', key)
    if cur and string.sub(cur, 1, 1) == 'd' then out[i] = cur else out[i] = 'i' end
  end
end
return out
`,
);

/** KEYS[1]; ARGV = token, done value, ttlMs. 1 if the token owned the key and it is now done. */
export const COMPLETE = new LuaScript(
  'backtrack.dedupe.complete',
  `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`,
);

/**
 * Marks every key in KEYS done in one atomic call, each only while its own token still owns it.
 * ARGV[1] = ttlMs, then per key i: ARGV[2i] = token, ARGV[2i + 1] = done value. Answers 1 or 0
 * per key, in KEYS order. A key repeated in KEYS is completed by its first entry; the later ones
 * find the done mark, not their lease, and answer 0.
 */
export const COMPLETE_MANY = new LuaScript(
  'backtrack.dedupe.completeMany',
  `
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'p:' .. ARGV[2 * i] then
    redis.call('SET', key, ARGV[2 * i + 1], 'PX', ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`,
);

/**
 * {@link COMPLETE_MANY} for the common batch whose entries share one done value (no results):
 * ARGV[1] = ttlMs, ARGV[2] = the done value, ARGV[2 + i] = the token for KEYS[i], so the call
 * carries one value per key instead of two.
 */
export const COMPLETE_MANY_SHARED = new LuaScript(
  'backtrack.dedupe.completeManyShared',
  `
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'p:' .. ARGV[i + 2] then
    redis.call('SET', key, ARGV[2], 'PX', ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`,
);

/** KEYS[1]; ARGV = token. 1 if the token owned the key and the claim is dropped. */
export const RELEASE = new LuaScript(
  'backtrack.dedupe.release',
  `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
);

/** KEYS[1]; ARGV = token, leaseMs. 1 if the token owned the key and its lease is extended. */
export const EXTEND = new LuaScript(
  'backtrack.dedupe.extend',
  `
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`,
);
