-- What a fetch does besides reading new entries, for one queue:
-- 1. move due delayed messages onto the stream (atomic: once each, however many
--    workers run this at the same moment);
-- 2. reclaim entries whose holder's lease ran out (a dead worker's, or released
--    ones): XCLAIM counts the delivery, and the entries are returned;
-- 3. forget consumers that hold nothing and were idle for `forget_ms`.
-- KEYS[1] stream, KEYS[2] delayed set
-- ARGV: group, me, now_ms, max_promote, max_reclaim (0: skip 2 and 3), default_lease_ms, forget_ms
-- Returns {next due score or false, {{entry id, deliveries, fields}...}, more to reclaim (0/1)}
local stream, delayed = KEYS[1], KEYS[2]
local group, me = ARGV[1], ARGV[2]
local max_reclaim, default_lease = tonumber(ARGV[5]), tonumber(ARGV[6])

local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
for _, member in ipairs(due) do
  local message_id, body = split_member(member)
  add(stream, 'id', message_id, 'body', body)
  redis.call('ZREM', delayed, member)
end
local next_due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')[2] or false

local claimed, more = {}, 0
if max_reclaim > 0 then
  for _, consumer in ipairs(consumers(stream, group)) do
    local room = max_reclaim - #claimed
    if consumer.pending > 0 and room <= 0 then
      more = 1
    elseif consumer.pending > 0 then
      local stale, lease = expired(stream, group, consumer.name, default_lease, room)
      local ids, counts = {}, {}
      for i, entry in ipairs(stale) do
        ids[i] = entry[1]
        counts[entry[1]] = tonumber(entry[4])
      end
      if #ids > 0 then
        for _, entry in ipairs(redis.call('XCLAIM', stream, group, me, lease, unpack(ids))) do
          if type(entry) == 'table' then
            table.insert(claimed, {entry[1], counts[entry[1]] + 1, entry[2]})
            counts[entry[1]] = nil
          end
        end
        -- Entries deleted meanwhile (by hand) are not returned: Redis 7 drops them from
        -- the pending list, 6.2 answers nil and keeps them; acknowledge what is left.
        for id, _ in pairs(counts) do
          redis.call('XACK', stream, group, id)
        end
      end
    elseif consumer.name ~= me and consumer.idle > tonumber(ARGV[7]) then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer.name)
    end
  end
end
return {next_due, claimed, more}
