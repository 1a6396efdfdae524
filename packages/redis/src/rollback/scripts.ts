/**
 * Lua scripts of the Redis rollback progress store. Keys (one hash tag per store prefix P):
 * `P:run:<id>` hash (meta, plan, status, updatedAt, summary), `P:run:<id>:items` hash
 * (itemId -> progress JSON), `P:run:<id>:lease` string `<token>\n<owner>` with a PX expiry,
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
 * KEYS: lease, items, run. ARGV: token, updatedAtIso, ttlMs, then triples (itemId, state, error
 * or '') . Returns 1, or 0 when fenced out.
 */
export const SET_ITEMS = `${FENCE}
for i = 4, #ARGV, 3 do
  local id, state, err = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local attempts = 0
  local prev = redis.call('HGET', KEYS[2], id)
  if prev then attempts = cjson.decode(prev).attempts or 0 end
  if state == 'publishing' then attempts = attempts + 1 end
  local entry = { state = state, attempts = attempts, updatedAt = ARGV[2] }
  if err ~= '' then entry.error = err end
  redis.call('HSET', KEYS[2], id, cjson.encode(entry))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], 'updatedAt', ARGV[2])
return 1
`;

/** KEYS: lease, run, items. ARGV: token, status, summaryJson, updatedAtIso, ttlMs. */
export const FINISH = `${FENCE}
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'summary', ARGV[3], 'updatedAt', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
`;
