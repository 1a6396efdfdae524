/**
 * Lua scripts of the Redis journal. Every key of one journal shares the `{…}` hash tag of its
 * prefix, so the scripts may build keys from the prefix and still run on Redis Cluster.
 *
 * Numbers: Lua numbers are doubles; seqs (< 2^53) are exact, and are always turned into strings
 * with `%.0f` because `tostring` would print them in exponent form.
 */

/**
 * Deletes up to ARGV-given count of records older than a seq cut-off, removing them from every
 * index. Shared by the append script (amortised pruning) and the prune script.
 */
const PRUNE_FUNCTION = `
local function prune(prefix, cut, max)
  local ids = redis.call('ZRANGEBYSCORE', prefix .. ':i:all', '-inf', '(' .. cut, 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local rkey = prefix .. ':r:' .. id
    local ix = redis.call('HGET', rkey, 'ix')
    if ix then
      for _, key in ipairs(cjson.decode(ix)) do redis.call('ZREM', key, id) end
    end
    redis.call('ZREM', prefix .. ':i:all', id)
    redis.call('ZREM', prefix .. ':i:pending', id)
    redis.call('DEL', rkey)
  end
  return #ids
end
`;

/**
 * KEYS: none (built from the prefix). ARGV: prefix, id, timeMs, json, indexKeysJson,
 * pruneCutSeq, pruneMax.
 * Returns { created (0|1), seq, state, json }.
 */
export const APPEND_SCRIPT = `${PRUNE_FUNCTION}
local prefix, id = ARGV[1], ARGV[2]
local rkey = prefix .. ':r:' .. id
local existing = redis.call('HMGET', rkey, 'q', 's', 'j')
if existing[1] then
  return { 0, existing[1], existing[2], existing[3] }
end
local last = tonumber(redis.call('GET', prefix .. ':seq') or '0')
local seq = math.max(last + 1, math.floor(tonumber(ARGV[3])) * 1024)
local s = string.format('%.0f', seq)
redis.call('SET', prefix .. ':seq', s)
redis.call('HSET', rkey, 'q', s, 's', 'pending', 'j', ARGV[4], 'ix', ARGV[5])
redis.call('ZADD', prefix .. ':i:all', s, id)
redis.call('ZADD', prefix .. ':i:pending', s, id)
for _, key in ipairs(cjson.decode(ARGV[5])) do redis.call('ZADD', key, s, id) end
prune(prefix, ARGV[6], tonumber(ARGV[7]))
return { 1, s, 'pending', ARGV[4] }
`;

/** ARGV: prefix, ids... Returns how many records changed from pending to published. */
export const MARK_PUBLISHED_SCRIPT = `
local prefix = ARGV[1]
local changed = 0
for i = 2, #ARGV do
  local rkey = prefix .. ':r:' .. ARGV[i]
  if redis.call('HGET', rkey, 's') == 'pending' then
    redis.call('HSET', rkey, 's', 'published')
    redis.call('ZREM', prefix .. ':i:pending', ARGV[i])
    changed = changed + 1
  end
end
return changed
`;

/** ARGV: prefix, cutSeq, max. Returns how many records were deleted. */
export const PRUNE_SCRIPT = `${PRUNE_FUNCTION}
return prune(ARGV[1], ARGV[2], tonumber(ARGV[3]))
`;
