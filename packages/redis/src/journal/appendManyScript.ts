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
 * record and index cost most of the batch's commands. Which records already exist is not asked
 * first: the batch goes into `i:all` with ONE `ZADD NX`, whose count says whether every record
 * was new (nearly always); only when not are the existing ones found (one ZMSCORE) and the ones
 * it added taken out again, so the batch then runs as if it had asked. The stored layout is the same as before: records
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
 * A pruneMax of 0 skips the pruning (and its reads) altogether.
 * Returns { appended, marked, pruned, oldest }: `oldest` the smallest seq left in `i:all` after
 * a pruning that ran (nil when it did not run, or `i:all` is empty); `appended` per record in order: its seq for a record it
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
local last = tonumber(redis.call('GET', seqKey) or '0')
-- Optimistic: every record is new (a retry or a repeated id is rare). Each gets its seq and
-- ONE ZADD NX puts the batch in \`i:all\`; when it added them all, no read of \`i:all\` was needed.
-- Otherwise the ones it added (their score is the seq given here: every seq stored earlier is
-- <= last) are taken out again and the batch goes the careful way, from the stored scores.
local stored, fast = {}, false
if count > 0 then
  local seqs, pairs_, s0 = {}, {}, last
  for r = 1, count do
    local seq = tonumber(ARGV[a + (r - 1) * 5 + 1])
    if seq <= s0 then seq = s0 + 1 end
    s0 = seq
    local s = string.format('%.0f', seq)
    seqs[r] = s
    pairs_[2 * r - 1] = s
    pairs_[2 * r] = ids[r]
  end
  local added = 0
  local i = 1
  while i <= 2 * count do
    local j = math.min(i + CHUNK - 1, 2 * count)
    added = added + redis.call('ZADD', allKey, 'NX', unpack(pairs_, i, j))
    i = j + 1
  end
  if added < count then
    stored = scoresOf(allKey, ids)
    local ours, seen = {}, {}
    for r = 1, count do
      -- Ours: added here (its hash is not written yet; a stored record's is, by the invariant).
      if stored[r] and not seen[ids[r]] and tonumber(stored[r]) == tonumber(seqs[r])
        and redis.call('EXISTS', KEYS[firstRecordKey + r - 1]) == 0 then
        ours[#ours + 1] = ids[r]
        stored[r] = false
      end
      seen[ids[r]] = true
    end
    if #ours > 0 then send('ZREM', allKey, ours) end
  else
    -- Every record is new: the seqs given above are the ones the loop below assigns.
    fast = seqs
    zn[allKey] = -1
  end
end
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
    local s
    if fast then
      s = fast[r]
    else
      local seq = tonumber(ARGV[a + 1])
      if seq <= last then seq = last + 1 end
      last = seq
      s = string.format('%.0f', seq)
    end
    local meta = ARGV[a + 2]
    if string.byte(meta) == 123 then
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'j', meta, 'ix', set[1])
    else
      redis.call('HSET', rkey, 'q', s, 's', 'pending', 'm', meta, 'b', ARGV[a + 3], 'ix', set[1])
    end
    created[id] = true
    for _, key in ipairs(set[2]) do
      local n = zn[key]
      if n >= 0 then
        local t = zadd[key]
        t[n + 1] = s
        t[n + 2] = id
        zn[key] = n + 2
      end
    end
    out[r] = s
  end
  a = a + 5
end
if count > 0 then
  if fast then
    redis.call('SET', seqKey, fast[count])
  else
    redis.call('SET', seqKey, string.format('%.0f', last))
  end
  if zn[pendingKey] > 0 then
    -- The pin (see PENDING_PIN): already there, it costs a lookup; it makes a new set a skiplist.
    local t, n = zadd[pendingKey], zn[pendingKey]
    t[n + 1] = '0'
    t[n + 2] = PENDING_PIN
    zn[pendingKey] = n + 2
  end
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
-- A pruneMax of 0 skips it (the writer knows nothing has expired, or prunes in fewer, bigger
-- calls); when it ran, the oldest seq left in \`i:all\` goes back, so the writer can skip
-- until the retention cut-off passes it.
local pruned, oldest = 0, false
local pruneMax = tonumber(ARGV[7])
if pruneMax > 0 then
  local ok, n = pcall(prune, allKey, pendingKey, prefix, ARGV[6], pruneMax)
  if ok then pruned = n end
  local first = redis.call('ZRANGE', allKey, 0, 0, 'WITHSCORES')
  if first[2] then oldest = first[2] end
end
return { out, marked, pruned, oldest }
`;
