/**
 * Lua scripts of the Redis rollback progress store. Keys (one hash tag per store prefix P):
 * `P:run:<id>` hash (meta, plan (its summary, never its items), checkpoint, status, updatedAt,
 * summary), `P:run:<id>:items` hash (itemId -> `state<TAB>updatedAt<TAB>error`, only the current page's
 * items and those failed or for a person), `P:run:<id>:attempts` hash (itemId -> times marked
 * publishing), `P:run:<id>:lease` string `<token>\n<owner>` with a PX expiry,
 * `P:runs` sorted set (createdAt ms -> run id).
 */

/**
 * KEYS: run, runs. ARGV: runId, planId, metaJson, planJson, createdAtMs, updatedAtIso, ttlMs.
 * Returns { created (0|1), planId of the stored run }.
 */
export const CREATE_RUN = `
local existing = redis.call('HGET', KEYS[1], 'planId')
if existing then return { 0, existing } end
redis.call('HSET', KEYS[1], 'planId', ARGV[2], 'meta', ARGV[3], 'plan', ARGV[4], 'status', 'running', 'updatedAt', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return { 1, ARGV[2] }
`;

/** KEYS: lease. ARGV: token, owner, leaseMs. Returns { 1, token } or { 0, owner, pttl }. */
export const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], 'NX', 'PX', ARGV[3]) then
  return { 1, ARGV[1] }
end
local v = redis.call('GET', KEYS[1]) or ''
local nl = string.find(v, '\\n', 1, true)
return { 0, nl and string.sub(v, nl + 1) or '', redis.call('PTTL', KEYS[1]) }
`;

const FENCE = `
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\\n' then return 0 end
`;

/** KEYS: lease. ARGV: token, leaseMs. Returns 1, or 0 when the token does not hold the lease. */
export const RENEW = `${FENCE}
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** KEYS: lease. ARGV: token. */
export const RELEASE = `${FENCE}
redis.call('DEL', KEYS[1])
return 1
`;

/**
 * KEYS: lease, items, run, attempts. ARGV: token, updatedAtIso, ttlMs, then pairs (itemId,
 * `state<TAB>updatedAt<TAB>error`) — written as given, nothing decoded. A `publishing` entry also counts
 * an attempt. Returns 1, or 0 when fenced out.
 */
export const SET_ITEMS = `${FENCE}
local fields = {}
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if string.sub(ARGV[i + 1], 1, 11) == 'publishing\t' then
    redis.call('HINCRBY', KEYS[4], ARGV[i], 1)
  end
end
for i = 1, #fields, 1000 do
  redis.call('HSET', KEYS[2], unpack(fields, i, math.min(i + 999, #fields)))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[3], 'updatedAt', ARGV[2])
return 1
`;

/**
 * KEYS: lease, items, run, attempts. ARGV: token, updatedAtIso, ttlMs, checkpointJson, then the
 * item ids to forget. Returns 1, or 0 when fenced out.
 */
export const SET_CHECKPOINT = `${FENCE}
redis.call('HSET', KEYS[3], 'checkpoint', ARGV[4], 'updatedAt', ARGV[2])
for i = 5, #ARGV, 1000 do
  local last = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, last))
  redis.call('HDEL', KEYS[4], unpack(ARGV, i, last))
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
`;

/** KEYS: lease, run, items, attempts. ARGV: token, status, summaryJson, updatedAtIso, ttlMs. */
export const FINISH = `${FENCE}
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'summary', ARGV[3], 'updatedAt', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
return 1
`;
