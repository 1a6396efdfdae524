/**
 * Lua scripts of the Redis journal. Every key of one journal shares the `{…}` hash tag of its
 * prefix (one slot). Every key a script knows before it runs is declared in KEYS, so a Redis
 * Cluster client routes the call to the slot's master; the one exception is the records that
 * pruning finds in `:i:all` at run time (`prefix .. ':r:' .. id`), same slot by the hash tag.
 *
 * Numbers: Lua numbers are doubles; seqs (< 2^53) are exact, and are always turned into strings
 * with `%.0f` because `tostring` would print them in exponent form.
 *
 * Invariants the scripts keep and rely on: a record is in `i:all` exactly while its hash exists,
 * and in `i:pending` exactly while its state is `pending` (every version wrote and deleted them
 * together, in one script). So "is this id stored" is asked of `i:all`, and "is it pending" of
 * `i:pending`, for a whole batch in one command, instead of reading each record's hash.
 * `i:pending` also holds one member that is not a record, `PENDING_PIN`, at score 0.
 */

/**
 * A member kept in `i:pending` at score 0 (below every retention cut-off, so no range of seqs a
 * reader asks for contains it; not a record id). It is longer than Redis'
 * `zset-max-listpack-value` (64 bytes by default), so the set stays a skiplist: a small sorted set
 * is otherwise stored as a listpack, and `i:pending` stays small (a batching writer marks what it
 * appended soon after), where every ZADD and ZREM walks the listpack and parses each score
 * (about 6 µs of Redis CPU per record on the publisher's path, measured).
 */
export const PENDING_PIN =
  '~backtrack: keeps this sorted set a skiplist (Redis stores a small one as a listpack, whose inserts walk it); not a record';

/**
 * Functions shared by the scripts.
 * - `batch(cmd)`: collects `cmd key values...` per key and sends ONE command per key (`flush`),
 *   in chunks that stay below Lua's `unpack` limit (8,000 values): a batch's records share their
 *   indexes, so N records cost one ZADD per index instead of N.
 * - `scoresOf(key, ids)`: each id's score in a sorted set, false when absent: one ZMSCORE
 *   (Redis 6.2+) per chunk, one ZSCORE per id on an older server.
 * - `markPublished(pending, ids, keys, first)`: ids (record key of ids[i] at keys[first + i - 1])
 *   still in `i:pending` become `published`; one HSET per id and one ZREM in all (no ZMSCORE of
 *   `i:pending` first: the ZREM's count is how many were pending). A record whose hash is gone
 *   (a half-finished teardown) is not recreated. Returns how many changed.
 * - `prune(all, pending, prefix, cut, max)`: deletes up to `max` records older than the seq
 *   cut-off, removing them from every index (one ZREM per index in all). A record whose `ix`
 *   does not parse is still deleted (from `i:all` and `i:pending` too): pruning goes past it.
 */
export const LUA_HELPERS = `
local CHUNK = 4000
local PENDING_PIN = '${PENDING_PIN}'
local function send(cmd, key, values)
  local n = #values
  local i = 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    redis.call(cmd, key, unpack(values, i, j))
    i = j + 1
  end
end
local function batch(cmd)
  local byKey, order = {}, {}
  local b = {}
  function b.add(key, ...)
    local t = byKey[key]
    if not t then
      t = {}
      byKey[key] = t
      order[#order + 1] = key
    end
    for _, v in ipairs({ ... }) do t[#t + 1] = v end
  end
  function b.flush()
    for _, key in ipairs(order) do send(cmd, key, byKey[key]) end
  end
  return b
end
local function scoresOf(key, ids)
  local out = {}
  local n = #ids
  local i = 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    local reply = redis.pcall('ZMSCORE', key, unpack(ids, i, j))
    if type(reply) == 'table' and reply.err then
      for k = i, n do out[k] = redis.call('ZSCORE', key, ids[k]) end
      return out
    end
    for k = 1, j - i + 1 do out[i + k - 1] = reply[k] end
    i = j + 1
  end
  return out
end
local function markPublished(pending, ids, keys, first)
  -- No read of \`i:pending\` first: every id's \`s\` is set (a record already published keeps the
  -- same value; one that is gone is recreated by the HSET, seen by its reply, and deleted), then
  -- ONE ZREM takes the ids out of \`i:pending\`, and its count is how many were pending (a record
  -- is in \`i:pending\` exactly while its state is \`pending\`). An id whose hash is gone but
  -- which is still in \`i:pending\` (a half-finished teardown) is removed by a ZREM of its own
  -- and not counted.
  local live, gone = {}, {}
  for i, id in ipairs(ids) do
    local rkey = keys[first + i - 1]
    if redis.call('HSET', rkey, 's', 'published') == 1 then
      redis.call('DEL', rkey)
      gone[#gone + 1] = id
    else
      live[#live + 1] = id
    end
  end
  if #gone > 0 then send('ZREM', pending, gone) end
  local changed = 0
  local n = #live
  local i = 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    changed = changed + redis.call('ZREM', pending, unpack(live, i, j))
    i = j + 1
  end
  return changed
end
local function prune(all, pending, prefix, cut, max)
  if max <= 0 then return 0 end
  local ids = redis.call('ZRANGEBYSCORE', all, '-inf', '(' .. cut, 'LIMIT', 0, max)
  if #ids == 0 then return 0 end
  local rems = batch('ZREM')
  for _, id in ipairs(ids) do
    local rkey = prefix .. ':r:' .. id
    local ix = redis.call('HGET', rkey, 'ix')
    local ok, keys = pcall(cjson.decode, ix or '[]')
    if ok and type(keys) == 'table' then
      for _, key in ipairs(keys) do rems.add(key, id) end
    end
    redis.call('DEL', rkey)
  end
  send('ZREM', all, ids)
  send('ZREM', pending, ids)
  rems.flush()
  return #ids
end
`;

/**
 * KEYS: i:pending, then the record key of each id. ARGV: ids (in KEYS order). Returns how many
 * records changed from pending to published.
 */
export const MARK_PUBLISHED_SCRIPT = `${LUA_HELPERS}
return markPublished(KEYS[1], ARGV, KEYS, 2)
`;

/** KEYS: i:all, i:pending. ARGV: prefix, cutSeq, max. Returns how many records were deleted. */
export const PRUNE_SCRIPT = `${LUA_HELPERS}
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
