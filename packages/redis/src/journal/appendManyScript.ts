/**
 * The journal's batch append: every key it touches is declared in KEYS (Redis Cluster safe), and
 * all of them share the journal prefix's hash tag, so one call lands on one node.
 *
 * KEYS: seqKey, allIndex, pendingIndex, then per record its record hash key followed by its
 * index keys.
 * ARGV: count, then per record: id, timeMs, meta (JSON), body (raw bytes), indexKeyCount,
 * indexKeysJson (kept in the record's `ix` field for pruning).
 * Returns, per record in order: { seq } for a record it created from the given one, or
 * { seq, state, j, m, b } for an id already stored (or repeated earlier in the batch): the stored
 * record wins (`j` for a record in the old format, `m` and `b` in the new one; the others nil).
 * Created records are not sent back, so a batch costs its bytes once on the wire.
 */
export const APPEND_MANY_SCRIPT = `
local seqKey, allKey, pendingKey = KEYS[1], KEYS[2], KEYS[3]
local last = tonumber(redis.call('GET', seqKey) or '0')
local out = {}
local k, a = 4, 2
for r = 1, tonumber(ARGV[1]) do
  local rkey = KEYS[k]
  local id, timeMs, meta, body = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local nix, ixJson = tonumber(ARGV[a + 4]), ARGV[a + 5]
  local existing = redis.call('HMGET', rkey, 'q', 's', 'j', 'm', 'b')
  if existing[1] then
    out[r] = { existing[1], existing[2], existing[3], existing[4], existing[5] }
  else
    local seq = math.max(last + 1, math.floor(tonumber(timeMs)) * 1024)
    last = seq
    local s = string.format('%.0f', seq)
    redis.call('HSET', rkey, 'q', s, 's', 'pending', 'm', meta, 'b', body, 'ix', ixJson)
    redis.call('ZADD', allKey, s, id)
    redis.call('ZADD', pendingKey, s, id)
    for i = 1, nix do redis.call('ZADD', KEYS[k + i], s, id) end
    out[r] = { s }
  end
  k = k + 1 + nix
  a = a + 6
end
redis.call('SET', seqKey, string.format('%.0f', last))
return out
`;
