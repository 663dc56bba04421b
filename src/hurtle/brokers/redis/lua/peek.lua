-- The ids of the next `count` entries never delivered to the group, oldest
-- first, without leasing them: a fetch over several queues peeks at each, then
-- reads from each exactly its share of the oldest (XREADGROUP's COUNT applies
-- to every stream it names, so one read over all would lease too many).
-- With `with_start` 1, the group's last-delivered id comes first: a fetch that
-- found nothing waits with XREAD from there, which leases nothing.
-- KEYS[1] stream; ARGV group, count, with_start (optional)
local start = nil
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err then
  return {}
end
for _, row in ipairs(groups) do
  local info = field_map(row)
  if info['name'] == ARGV[1] then
    start = info['last-delivered-id']
  end
end
if start == nil then
  return {}
end
local ids = {}
if ARGV[3] == '1' then
  ids[1] = start
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. start, '+', 'COUNT', tonumber(ARGV[2]))) do
  ids[#ids + 1] = entry[1]
end
return ids
