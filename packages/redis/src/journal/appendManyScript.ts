/**
 * The journal's batch append: every key it touches is declared in KEYS (Redis Cluster safe), and
 * all of them share the journal prefix's hash tag, so one call lands on one node.
 *
 * A batch repeats a few sets of index keys (a service, version and type; a saga), so each set
 * travels once and each record names its set by number.
 *
 * KEYS: seqKey, allIndex, pendingIndex, then every index key of the batch once, then the record
 * hash key of each record in order.
 * ARGV: count, setCount, the KEYS position of the first record key, then per set: its JSON
 * (kept in the record's `ix` field for pruning), its key count and the KEYS position of each of
 * its keys; then per record: id, timeMs, meta (JSON), body (raw bytes), set number. A meta
 * starting with '{' is a record in the `j` format (stored as `j`, its body argument ignored);
 * '[' is the `m` + `b` format.
 * Returns, per record in order: { seq } for a record it created from the given one, or
 * { seq, state, j, m, b } for an id already stored (or repeated earlier in the batch): the stored
 * record wins (`j` for a record in the 'json' format, `m` and `b` in 'fields'; the others nil).
 * Created records are not sent back, so a batch costs its bytes once on the wire.
 */
export const APPEND_MANY_SCRIPT = `
local seqKey, allKey, pendingKey = KEYS[1], KEYS[2], KEYS[3]
local count, setCount, firstRecordKey = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local sets = {}
local a = 4
for n = 1, setCount do
  local setKeys = {}
  local nkeys = tonumber(ARGV[a + 1])
  for i = 1, nkeys do setKeys[i] = KEYS[tonumber(ARGV[a + 1 + i])] end
  sets[n] = { ARGV[a], setKeys }
  a = a + 2 + nkeys
end
local last = tonumber(redis.call('GET', seqKey) or '0')
local out = {}
for r = 1, count do
  local rkey = KEYS[firstRecordKey + r - 1]
  local id, timeMs, meta, body = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local set = sets[tonumber(ARGV[a + 4])]
  local existing = redis.call('HMGET', rkey, 'q', 's', 'j', 'm', 'b')
  if existing[1] then
    out[r] = { existing[1], existing[2], existing[3], existing[4], existing[5] }
  else
    local seq = math.max(last + 1, math.floor(tonumber(timeMs)) * 1024)
    last = seq
    local s = string.format('%.0f', seq)
    if string.sub(meta, 1, 1) == '{' then
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'j', meta, 'ix', set[1])
    else
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'm', meta, 'b', body, 'ix', set[1])
    end
    redis.call('ZADD', allKey, s, id)
    redis.call('ZADD', pendingKey, s, id)
    for _, key in ipairs(set[2]) do redis.call('ZADD', key, s, id) end
    out[r] = { s }
  end
  a = a + 5
end
redis.call('SET', seqKey, string.format('%.0f', last))
return out
`;
