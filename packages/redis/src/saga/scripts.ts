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
 * A saga's record and its index entries live in the shard its id hashes to, so every script
 * touches one hash slot. Index members are `<createdAt>\0<sagaId>` with score 0: ZRANGEBYLEX
 * orders them by creation time, then id, and a cursor is simply the last member returned, which
 * stays valid while sagas change status (a saga's member never changes, only the sets it is in).
 *
 * Every script gets every key it touches in KEYS (Redis Cluster routes by them); none builds a
 * key name.
 */

/**
 * KEYS = rec, idx:all, idx:s, idx:n, idx:ns (of the new record). ARGV = doc, rev, status, name,
 * member. Returns {1} when created, {0, existing doc} when the saga already exists (left as is).
 */
export const CREATE = new LuaScript(
  'backtrack.saga.create',
  `
local existing = redis.call('HGET', KEYS[1], 'doc')
if existing then return {0, existing} end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'rev', ARGV[2], 'status', ARGV[3], 'name', ARGV[4], 'member', ARGV[5])
for i = 2, 5 do redis.call('ZADD', KEYS[i], 0, ARGV[5]) end
return {1}
`,
);

/**
 * KEYS = rec, idx:all, idx:n:<name>, then for each of the N statuses (in ARGV order) idx:s:<st>,
 * then for each idx:ns:<st>:<name>. The status sets of EVERY status are declared because the
 * script moves the member out of the stored (old) status's sets, which the caller does not know.
 * ARGV = expected rev, doc, new rev, new status, name, member, N, then the N statuses.
 * Returns {1} on success, {0, stored rev} on a revision mismatch, {-1} when the saga is absent,
 * {-2, stored name} when the record would change its saga name (its old name's sets are not
 * declared; a saga never changes name).
 * The revision check, the write and the index move are one atomic step: one round trip.
 */
export const UPDATE = new LuaScript(
  'backtrack.saga.update',
  `
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
 * KEYS = for each of N sagas of ONE shard: rec, idx:all, idx:s:<status>, idx:n:<name>,
 * idx:ns:<status>:<name> (5 keys per saga, the sets it is in as read). ARGV = for each saga: the
 * revision and status it was read with, and its member. Deletes each saga whose stored revision
 * and status are still those (one written meanwhile is kept) and its index entries. Returns how
 * many it deleted.
 */
export const PRUNE = new LuaScript(
  'backtrack.saga.prune',
  `
local deleted = 0
for i = 0, (#KEYS / 5) - 1 do
  local k = i * 5
  local a = i * 3
  local cur = redis.call('HMGET', KEYS[k + 1], 'rev', 'status')
  if cur[1] == ARGV[a + 1] and cur[2] == ARGV[a + 2] then
    redis.call('DEL', KEYS[k + 1])
    for j = 2, 5 do redis.call('ZREM', KEYS[k + j], ARGV[a + 3]) end
    deleted = deleted + 1
  end
end
return deleted
`,
);
