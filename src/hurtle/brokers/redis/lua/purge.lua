-- Delete every waiting message of one queue: delayed, never delivered, and
-- leased ones whose lease ran out. Live leases stay. Returns how many.
-- KEYS[1] stream, KEYS[2] delayed set; ARGV group, default_lease_ms
local stream, group, default_lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
local purged = redis.call('ZCARD', KEYS[2])
redis.call('DEL', KEYS[2])
for _, consumer in ipairs(consumers(stream, group)) do
  if consumer.pending > 0 then
    for _, entry in ipairs(expired(stream, group, consumer.name, default_lease, consumer.pending)) do
      redis.call('XACK', stream, group, entry[1])
      purged = purged + redis.call('XDEL', stream, entry[1])
    end
  end
end
-- Never delivered: after the group's last-delivered id (all, when no group yet).
local start = '-'
local groups = redis.pcall('XINFO', 'GROUPS', stream)
if not groups.err then
  for _, row in ipairs(groups) do
    local info = field_map(row)
    if info['name'] == group then
      start = '(' .. info['last-delivered-id']
    end
  end
end
while true do
  local batch = redis.call('XRANGE', stream, start, '+', 'COUNT', 1000)
  if #batch == 0 then
    break
  end
  for _, entry in ipairs(batch) do
    purged = purged + redis.call('XDEL', stream, entry[1])
  end
  start = '(' .. batch[#batch][1]
end
return purged
