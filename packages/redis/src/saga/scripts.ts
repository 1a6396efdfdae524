import { FINISHED_SAGA_STATUSES } from '@backtrack/core';
import { LuaScript } from '../internal/LuaScript.js';

/*
 * Layout under the key prefix P, per index shard S (see keyLayout.ts): S is `{<tag>}:` in the
 * default 'sharded' layout (16 shards, each tag in its own sixteenth of the slot space) and ''
 * in the 'legacy' layout (one shard: the keys of versions before the Cluster support).
 *   P S rec:<sagaId>                    hash: doc (the SagaRecord as JSON), rev, status, name, member
 *   P S idx:all                         sorted set of every saga of the shard
 *   P S idx:s:<status>                  sorted set per status
 *   P S idx:n:<sagaName>                sorted set per saga name
 *   P S idx:ns:<status>:<sagaName>      sorted set per status and saga name
 *   P S idx:exp                         sorted set of the finished sagas whose record has a TTL,
 *                                       scored by expiry time (ms); member
 *                                       `<status>\0<createdAt>\0<sagaId>\0<sagaName>`: what the
 *                                       sweep needs to name the index sets once the record is gone
 * A saga's record and its index entries live in the shard its id hashes to, so every script
 * touches one hash slot. Index members are `<createdAt>\0<sagaId>` with score 0: ZRANGEBYLEX
 * orders them by creation time, then id, and a cursor is simply the last member returned, which
 * stays valid while sagas change status (a saga's member never changes, only the sets it is in).
 *
 * Every script gets every key it touches in KEYS (Redis Cluster routes by them); none builds a
 * key name.
 *
 * Retention: the write that makes a saga finished (completed, compensated, failed) gives its
 * record a TTL (PEXPIRE, in the same script: no extra round trip) and an `idx:exp` entry; any
 * other write removes both (PERSIST). Redis deletes the record by itself; SWEEP then trims the
 * index entries of records that are gone, so the sets do not keep dangling members.
 */

/** The `idx:exp` member of a saga: status, index member (`createdAt\0sagaId`) and name. */
const EXP_MEMBER = `
local function expMember(status, member, name) return status .. '\\0' .. member .. '\\0' .. name end
`;

/**
 * KEYS = rec, idx:all, idx:s, idx:n, idx:ns (of the new record), idx:exp. ARGV = doc, rev,
 * status, name, member, ttl ms ('0': keep), expiry time ms. Returns {1} when created,
 * {0, existing doc} when the saga already exists (left as is).
 */
export const CREATE = new LuaScript(
  'backtrack.saga.create',
  `${EXP_MEMBER}
local existing = redis.call('HGET', KEYS[1], 'doc')
if existing then return {0, existing} end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'rev', ARGV[2], 'status', ARGV[3], 'name', ARGV[4], 'member', ARGV[5])
for i = 2, 5 do redis.call('ZADD', KEYS[i], 0, ARGV[5]) end
if ARGV[6] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('ZADD', KEYS[6], ARGV[7], expMember(ARGV[3], ARGV[5], ARGV[4]))
end
return {1}
`,
);

/**
 * KEYS = rec, idx:all, idx:n:<name>, then for each of the N statuses (in ARGV order) idx:s:<st>,
 * then for each idx:ns:<st>:<name>, then idx:exp. The status sets of EVERY status are declared
 * because the script moves the member out of the stored (old) status's sets, which the caller
 * does not know.
 * ARGV = expected rev, doc, new rev, new status, name, member, N, then the N statuses, then the
 * ttl in ms ('0': keep the record; set for a finished status) and the expiry time in ms.
 * Returns {1} on success, {0, stored rev} on a revision mismatch, {-1} when the saga is absent,
 * {-2, stored name} when the record would change its saga name (its old name's sets are not
 * declared; a saga never changes name).
 * The revision check, the write, the index move and the TTL are one atomic step: one round trip.
 */
export const UPDATE = new LuaScript(
  'backtrack.saga.update',
  `${EXP_MEMBER}
local cur = redis.call('HMGET', KEYS[1], 'rev', 'status', 'name', 'member')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] then return {0, cur[1]} end
if cur[3] ~= ARGV[5] then return {-2, cur[3]} end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'rev', ARGV[3], 'status', ARGV[4], 'name', ARGV[5], 'member', ARGV[6])
if cur[2] ~= ARGV[4] or cur[4] ~= ARGV[6] then
  local n = tonumber(ARGV[7])
  local old, new = nil, nil
  for i = 1, n do
    if ARGV[7 + i] == cur[2] then old = i end
    if ARGV[7 + i] == ARGV[4] then new = i end
  end
  redis.call('ZREM', KEYS[2], cur[4])
  redis.call('ZREM', KEYS[3], cur[4])
  if old then
    redis.call('ZREM', KEYS[3 + old], cur[4])
    redis.call('ZREM', KEYS[3 + n + old], cur[4])
  end
  redis.call('ZADD', KEYS[2], 0, ARGV[6])
  redis.call('ZADD', KEYS[3], 0, ARGV[6])
  redis.call('ZADD', KEYS[3 + new], 0, ARGV[6])
  redis.call('ZADD', KEYS[3 + n + new], 0, ARGV[6])
end
local n = tonumber(ARGV[7])
local exp = KEYS[4 + 2 * n]
redis.call('ZREM', exp, expMember(cur[2], cur[4], cur[3]))
if ARGV[8 + n] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[8 + n])
  redis.call('ZADD', exp, ARGV[9 + n], expMember(ARGV[4], ARGV[6], ARGV[5]))
else
  redis.call('PERSIST', KEYS[1])
end
return {1}
`,
);

/**
 * KEYS = index sets of one shard to read. ARGV = ZRANGEBYLEX min ('-' or '(' .. last member),
 * count. Returns up to `count` members of each set, concatenated (the caller merges in byte
 * order, across sets and shards).
 */
export const LIST_MEMBERS = new LuaScript(
  'backtrack.saga.listMembers',
  `
local out = {}
for _, k in ipairs(KEYS) do
  local ms = redis.call('ZRANGEBYLEX', k, ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
  for _, m in ipairs(ms) do out[#out + 1] = m end
end
return out
`,
);

/** KEYS = record keys of one shard. Returns each record's doc (false when absent), in order. */
export const GET_DOCS = new LuaScript(
  'backtrack.saga.getDocs',
  `
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGET', k, 'doc') end
return out
`,
);

/**
 * KEYS = idx:exp of ONE shard, then for each of N sagas of that shard: rec, idx:all,
 * idx:s:<status>, idx:n:<name>, idx:ns:<status>:<name> (5 keys per saga, the sets it is in as
 * read). ARGV = for each saga: the revision and status it was read with, its member and its name.
 * Deletes each saga whose stored revision and status are still those (one written meanwhile is
 * kept), its index entries and its `idx:exp` entry. Returns how many it deleted.
 */
export const PRUNE = new LuaScript(
  'backtrack.saga.prune',
  `${EXP_MEMBER}
local deleted = 0
for i = 0, ((#KEYS - 1) / 5) - 1 do
  local k = 1 + i * 5
  local a = i * 4
  local cur = redis.call('HMGET', KEYS[k + 1], 'rev', 'status')
  if cur[1] == ARGV[a + 1] and cur[2] == ARGV[a + 2] then
    redis.call('DEL', KEYS[k + 1])
    for j = 2, 5 do redis.call('ZREM', KEYS[k + j], ARGV[a + 3]) end
    redis.call('ZREM', KEYS[1], expMember(ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]))
    deleted = deleted + 1
  end
end
return deleted
`,
);

/**
 * The retention sweep of ONE shard. KEYS = idx:exp, then for each of N expired entries: rec,
 * idx:all, idx:s:<status>, idx:n:<name>, idx:ns:<status>:<name>. ARGV = for each entry: its
 * `idx:exp` member and its index member. When the record is gone (Redis expired it), or the id
 * now holds another saga (another member), the entry's index members are removed; a record
 * still there with a TTL (clocks apart) is left for a later sweep, one without a TTL only loses
 * its stale `idx:exp` entry. Returns how many sagas' index entries it removed.
 */
export const SWEEP = new LuaScript(
  'backtrack.saga.sweep',
  `
local removed = 0
for i = 0, ((#KEYS - 1) / 5) - 1 do
  local k = 1 + i * 5
  local a = i * 2
  local member = redis.call('HGET', KEYS[k + 1], 'member')
  if member ~= ARGV[a + 2] then
    for j = 2, 5 do redis.call('ZREM', KEYS[k + j], ARGV[a + 2]) end
    redis.call('ZREM', KEYS[1], ARGV[a + 1])
    removed = removed + 1
  elseif redis.call('PTTL', KEYS[k + 1]) == -1 then
    redis.call('ZREM', KEYS[1], ARGV[a + 1])
  end
end
return removed
`,
);

/**
 * UPDATE when the caller knows the stored status (the status its own last write or read left at
 * `expected rev`): it declares only the keys the write touches, instead of the index sets of
 * every status.
 * KEYS = rec, idx:exp, and when the status changes: idx:s:<old>, idx:ns:<old>:<name>,
 * idx:s:<new>, idx:ns:<new>:<name>.
 * ARGV = expected rev, doc, new rev, new status, name, member, the stored (old) status the
 * caller expects, the ttl in ms ('0': keep) and the expiry time in ms.
 * Returns what UPDATE returns, or {-3} when the stored saga is not what the caller expected (its
 * status or member differ, or a status change without its keys): nothing was written, and the
 * caller sends the full UPDATE. The same atomic step as UPDATE: one round trip.
 * A saga stored in a status that is not finished has no TTL and no `idx:exp` entry (the write
 * that left it so removed both), so only a write from a finished status clears them.
 */
export const UPDATE_KNOWN = new LuaScript(
  'backtrack.saga.updateKnown',
  `${EXP_MEMBER}
local cur = redis.call('HMGET', KEYS[1], 'rev', 'status', 'name', 'member')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] then return {0, cur[1]} end
if cur[3] ~= ARGV[5] then return {-2, cur[3]} end
local moves = cur[2] ~= ARGV[4]
local wasFinished = ${FINISHED_SAGA_STATUSES.map((st) => `cur[2] == '${st}'`).join(' or ')}
if cur[2] ~= ARGV[7] or cur[4] ~= ARGV[6] or (moves and #KEYS < 6) then return {-3} end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'rev', ARGV[3], 'status', ARGV[4])
if moves then
  redis.call('ZREM', KEYS[3], cur[4])
  redis.call('ZREM', KEYS[4], cur[4])
  redis.call('ZADD', KEYS[5], 0, ARGV[6])
  redis.call('ZADD', KEYS[6], 0, ARGV[6])
end
if wasFinished then redis.call('ZREM', KEYS[2], expMember(cur[2], cur[4], cur[3])) end
if ARGV[8] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('ZADD', KEYS[2], ARGV[9], expMember(ARGV[4], ARGV[6], ARGV[5]))
elseif wasFinished then
  redis.call('PERSIST', KEYS[1])
end
return {1}
`,
);
