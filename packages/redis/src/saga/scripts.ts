import { LuaScript } from '../internal/LuaScript.js';

/*
 * Layout under the key prefix P:
 *   P rec:<sagaId>                    hash: doc (the SagaRecord as JSON), rev, status, name, member
 *   P idx:all                         sorted set of every saga
 *   P idx:s:<status>                  sorted set per status
 *   P idx:n:<sagaName>                sorted set per saga name
 *   P idx:ns:<status>:<sagaName>      sorted set per status and saga name
 * Index members are `<createdAt>\0<sagaId>` with score 0: ZRANGEBYLEX orders them by creation time,
 * then id, and a cursor is simply the last member returned, which stays valid while sagas change
 * status (a saga's member never changes, only the sets it is in).
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
 * KEYS = rec, idx:all, idx:s, idx:n, idx:ns (of the new record).
 * ARGV = prefix, expected rev, doc, new rev, status, name, member.
 * Returns {1} on success, {0, stored rev} on a revision mismatch, {-1} when the saga is absent.
 * The revision check, the write and the index move are one atomic step: one round trip.
 */
export const UPDATE = new LuaScript(
  'backtrack.saga.update',
  `
local cur = redis.call('HMGET', KEYS[1], 'rev', 'status', 'name', 'member')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[2] then return {0, cur[1]} end
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'rev', ARGV[4], 'status', ARGV[5], 'name', ARGV[6], 'member', ARGV[7])
if cur[2] ~= ARGV[5] or cur[3] ~= ARGV[6] or cur[4] ~= ARGV[7] then
  local p = ARGV[1]
  redis.call('ZREM', KEYS[2], cur[4])
  redis.call('ZREM', p .. 'idx:s:' .. cur[2], cur[4])
  redis.call('ZREM', p .. 'idx:n:' .. cur[3], cur[4])
  redis.call('ZREM', p .. 'idx:ns:' .. cur[2] .. ':' .. cur[3], cur[4])
  for i = 2, 5 do redis.call('ZADD', KEYS[i], 0, ARGV[7]) end
end
return {1}
`,
);

/**
 * KEYS = the index sets to read (their union is the answer). ARGV = record key prefix
 * (P .. 'rec:'), ZRANGEBYLEX min ('-' or '(' .. last member), limit.
 * Returns {hasMore (0/1), last member of this page or '', doc, doc, ...}.
 * Several sets are merged in byte order (the order ZRANGEBYLEX uses); Lua's own string '<'
 * follows the server's locale, so it is not used.
 */
export const LIST = new LuaScript(
  'backtrack.saga.list',
  `
local limit = tonumber(ARGV[3])
local members = {}
for _, k in ipairs(KEYS) do
  local ms = redis.call('ZRANGEBYLEX', k, ARGV[2], '+', 'LIMIT', 0, limit + 1)
  for _, m in ipairs(ms) do members[#members + 1] = m end
end
if #KEYS > 1 then
  table.sort(members, function(a, b)
    local n = math.min(#a, #b)
    for i = 1, n do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then return x < y end
    end
    return #a < #b
  end)
end
local n = math.min(#members, limit)
local out = {0, ''}
if #members > limit then out[1] = 1 end
if n > 0 then out[2] = members[n] end
for i = 1, n do
  local m = members[i]
  local sep = string.find(m, '\\0', 1, true)
  local doc = redis.call('HGET', ARGV[1] .. string.sub(m, sep + 1), 'doc')
  if doc then out[#out + 1] = doc end
end
return out
`,
);
