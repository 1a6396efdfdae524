import { LUA_HELPERS } from './scripts.js';

/**
 * The journal's batch write: the append of a batch, then the published marks of earlier records,
 * then the amortised pruning, in ONE script call (one EVALSHA per batch instead of three). Every
 * key it knows before it runs is declared in KEYS (Redis Cluster safe), and all of them share the
 * journal prefix's hash tag, so one call lands on one node; pruning's records, found in `i:all`
 * at run time, are in the same slot by the tag.
 *
 * A batch repeats a few sets of index keys (a service, version and type; a saga), so each set
 * travels once and each record names its set by number. Each index gets ONE ZADD per batch with
 * every record of the batch that goes in it (`i:all` and `i:pending` one each), where a ZADD per
 * record and index cost most of the batch's commands; which records already exist is asked
 * of `i:all` once for the batch (ZMSCORE). The stored layout is the same as before: records
 * written by this script and by earlier versions read the same either way.
 *
 * KEYS: seqKey, allIndex, pendingIndex, then every index key of the batch once, then the record
 * hash key of each record in order, then the record hash key of each id to mark.
 * ARGV: count, setCount, the KEYS position of the first record key, markCount, prefix,
 * pruneCutSeq, pruneMax, then per set: its JSON (kept in the record's `ix` field for pruning),
 * its key count and the KEYS position of each of its keys; then per record: id, the first seq of its time's millisecond (timeMs * 1024), meta
 * (JSON), body (raw bytes), set number; then the ids to mark. A meta starting with '{' is a
 * record in the `j` format (stored as `j`, its body argument ignored); '[' is the `m` + `b`
 * format.
 * Returns { appended, marked, pruned }: `appended` per record in order: its seq for a record it
 * created from the given one, or { seq, state, j, m, b } for an id already stored (or repeated
 * earlier in the batch): the stored record wins (`j` for a record in the 'json' format, `m` and
 * `b` in 'fields'; the others nil). Created records are not sent back, so a batch costs its
 * bytes once on the wire. The marks run after the append: an id of this batch is marked too.
 */
export const APPEND_MANY_SCRIPT = `${LUA_HELPERS}
local seqKey, allKey, pendingKey = KEYS[1], KEYS[2], KEYS[3]
local count, setCount, firstRecordKey = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local markCount, prefix = tonumber(ARGV[4]), ARGV[5]
-- Per index key, the ZADD arguments of the batch (score, member, ...) and their count: plain
-- table writes per record (the Lua work per record is what a batch costs most).
local zadd, zn = { [allKey] = {}, [pendingKey] = {} }, { [allKey] = 0, [pendingKey] = 0 }
local zkeys = { allKey, pendingKey }
local sets = {}
local a = 8
for n = 1, setCount do
  local setKeys = { allKey, pendingKey }
  local nkeys = tonumber(ARGV[a + 1])
  for i = 1, nkeys do
    local key = KEYS[tonumber(ARGV[a + 1 + i])]
    setKeys[i + 2] = key
    if not zadd[key] then
      zadd[key] = {}
      zn[key] = 0
      zkeys[#zkeys + 1] = key
    end
  end
  sets[n] = { ARGV[a], setKeys }
  a = a + 2 + nkeys
end
local ids = {}
for r = 1, count do ids[r] = ARGV[a + (r - 1) * 5] end
local stored = scoresOf(allKey, ids)
local last = tonumber(redis.call('GET', seqKey) or '0')
local created = {}
local out = {}
for r = 1, count do
  local rkey = KEYS[firstRecordKey + r - 1]
  local id = ids[r]
  local existing = nil
  if stored[r] or created[id] then
    existing = redis.call('HMGET', rkey, 'q', 's', 'j', 'm', 'b')
    if not existing[1] then existing = nil end
  end
  if existing then
    out[r] = existing
  else
    local set = sets[tonumber(ARGV[a + 4])]
    local seq = tonumber(ARGV[a + 1])
    if seq <= last then seq = last + 1 end
    last = seq
    local s = string.format('%.0f', seq)
    local meta = ARGV[a + 2]
    if string.byte(meta) == 123 then
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'j', meta, 'ix', set[1])
    else
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'm', meta, 'b', ARGV[a + 3], 'ix', set[1])
    end
    created[id] = true
    for _, key in ipairs(set[2]) do
      local n = zn[key]
      local t = zadd[key]
      t[n + 1] = s
      t[n + 2] = id
      zn[key] = n + 2
    end
    out[r] = s
  end
  a = a + 5
end
if count > 0 then
  redis.call('SET', seqKey, string.format('%.0f', last))
  for _, key in ipairs(zkeys) do
    if zn[key] > 0 then send('ZADD', key, zadd[key]) end
  end
end
local marked = 0
if markCount > 0 then
  local markIds = {}
  for i = 1, markCount do markIds[i] = ARGV[a + i - 1] end
  marked = markPublished(pendingKey, markIds, KEYS, firstRecordKey + count)
end
-- Pruning is housekeeping: a failure in it (a record whose \`ix\` does not parse) must not fail
-- the append and marks, which are written by now (a separate call before, whose error was dropped).
local ok, pruned = pcall(prune, allKey, pendingKey, prefix, ARGV[6], tonumber(ARGV[7]))
if not ok then pruned = 0 end
return { out, marked, pruned }
`;
