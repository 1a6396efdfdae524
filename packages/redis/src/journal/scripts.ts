/**
 * Lua scripts of the Redis journal. Every key of one journal shares the `{…}` hash tag of its
 * prefix (one slot). Every key a script knows before it runs is declared in KEYS, so a Redis
 * Cluster client routes the call to the slot's master; the one exception is the records that
 * pruning finds in `:i:all` at run time (`prefix .. ':r:' .. id`), same slot by the hash tag.
 *
 * Numbers: Lua numbers are doubles; seqs (< 2^53) are exact, and are always turned into strings
 * with `%.0f` because `tostring` would print them in exponent form.
 */

/**
 * Deletes up to ARGV-given count of records older than a seq cut-off, removing them from every
 * index. Shared by the append script (amortised pruning) and the prune script.
 */
const PRUNE_FUNCTION = `
local function prune(all, pending, prefix, cut, max)
  local ids = redis.call('ZRANGEBYSCORE', all, '-inf', '(' .. cut, 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local rkey = prefix .. ':r:' .. id
    local ix = redis.call('HGET', rkey, 'ix')
    if ix then
      for _, key in ipairs(cjson.decode(ix)) do redis.call('ZREM', key, id) end
    end
    redis.call('ZREM', all, id)
    redis.call('ZREM', pending, id)
    redis.call('DEL', rkey)
  end
  return #ids
end
`;

/**
 * KEYS: record, seq, i:all, i:pending, then the record's index keys (also in indexKeysJson).
 * ARGV: prefix, id, timeMs, meta, body, indexKeysJson, pruneCutSeq, pruneMax. A meta starting
 * with '{' is a record in the `j` format (stored as `j`, the body ignored); '[' is `m` + `b`.
 * Returns { 1, seq } for a record it created, or { 0, seq, state, j, m, b } for an id already
 * stored (`j` in the 'json' format, `m` and `b` in 'fields'; the others nil).
 */
export const APPEND_SCRIPT = `${PRUNE_FUNCTION}
local prefix, id = ARGV[1], ARGV[2]
local rkey = KEYS[1]
local existing = redis.call('HMGET', rkey, 'q', 's', 'j', 'm', 'b')
if existing[1] then
  return { 0, existing[1], existing[2], existing[3], existing[4], existing[5] }
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = math.max(last + 1, math.floor(tonumber(ARGV[3])) * 1024)
local s = string.format('%.0f', seq)
redis.call('SET', KEYS[2], s)
if string.sub(ARGV[4], 1, 1) == '{' then
  redis.call('HSET', rkey, 'q', s, 's', 'pending', 'j', ARGV[4], 'ix', ARGV[6])
else
  redis.call('HSET', rkey, 'q', s, 's', 'pending', 'm', ARGV[4], 'b', ARGV[5], 'ix', ARGV[6])
end
redis.call('ZADD', KEYS[3], s, id)
redis.call('ZADD', KEYS[4], s, id)
for i = 5, #KEYS do redis.call('ZADD', KEYS[i], s, id) end
prune(KEYS[3], KEYS[4], prefix, ARGV[7], tonumber(ARGV[8]))
return { 1, s }
`;

/**
 * KEYS: i:pending, then the record key of each id. ARGV: ids (in KEYS order). Returns how many
 * records changed from pending to published.
 */
export const MARK_PUBLISHED_SCRIPT = `
local changed = 0
for i = 1, #ARGV do
  local rkey = KEYS[i + 1]
  if redis.call('HGET', rkey, 's') == 'pending' then
    redis.call('HSET', rkey, 's', 'published')
    redis.call('ZREM', KEYS[1], ARGV[i])
    changed = changed + 1
  end
end
return changed
`;

/** KEYS: i:all, i:pending. ARGV: prefix, cutSeq, max. Returns how many records were deleted. */
export const PRUNE_SCRIPT = `${PRUNE_FUNCTION}
return prune(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]))
`;

/**
 * Reads many records in one call (one command, one reply) instead of a pipeline of one HMGET per
 * record. KEYS: the record hash keys. Returns, per key in order, { q, s, j, m, b } (nil entries
 * for fields a record does not have: `j` in the 'fields' format, `m` and `b` in the 'json' one; all nil
 * for a record that is not there).
 */
export const READ_MANY_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HMGET', KEYS[i], 'q', 's', 'j', 'm', 'b')
end
return out
`;
