-- What a fetch does besides reading new entries, for one queue:
-- 1. move due delayed messages onto the stream (atomic: once each, however many
--    workers run this at the same moment). Each is added before it is removed
--    from the set. A member that is no message (no newline between id and body,
--    or an eta of +inf: never due) goes to the dead letters, with why;
-- 2. reclaim entries whose holder's lease ran out (a dead worker's, or released
--    ones): XCLAIM counts the delivery, and the entries are returned;
-- 3. forget consumers that hold nothing and were idle for `forget_ms`.
-- A key another program gave the wrong type stops its own step only, and is
-- returned as a problem for the worker's log: it never stops the queue's other steps.
-- KEYS[1] stream, KEYS[2] delayed set, KEYS[3] dead stream
-- ARGV: group, me, now_ms, max_promote, max_reclaim (0: skip 2 and 3), default_lease_ms,
-- forget_ms, now (unix seconds, for dead letters)
-- Returns {next due score or false, {{entry id, deliveries, fields}...}, more to reclaim (0/1),
-- {reason of each member dead-lettered...}, {problem...}}
local stream, delayed, dead = KEYS[1], KEYS[2], KEYS[3]
local group, me = ARGV[1], ARGV[2]
local max_promote, max_reclaim, default_lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local buried, problems = {}, {}

-- Dead-letter a member that is no message, then remove it (kept when the add fails).
local function bury(member, reason)
  local added = try_add(dead, 'id', '', 'body', member, 'reason', reason, 'failed_at', ARGV[8])
  if failed(added) then
    problems[#problems + 1] = dead .. ': ' .. added.err
    return
  end
  redis.call('ZREM', delayed, member)
  buried[#buried + 1] = reason
end

local due = redis.pcall('ZRANGEBYSCORE', delayed, '-inf', ARGV[3], 'LIMIT', 0, max_promote)
local never = redis.pcall('ZRANGEBYSCORE', delayed, '+inf', '+inf', 'LIMIT', 0, max_promote)
local next_due = false
if failed(due) or failed(never) then
  problems[#problems + 1] = delayed .. ': ' .. (due.err or never.err)
else
  for _, member in ipairs(due) do
    local message_id, body = split_member(member)
    if message_id == nil then
      bury(member, 'a delayed message without the newline between its id and its body')
    else
      local added = try_add(stream, 'id', message_id, 'body', body)
      if failed(added) then -- the stream key holds another type: every add would fail
        problems[#problems + 1] = stream .. ': ' .. added.err
        break
      end
      redis.call('ZREM', delayed, member)
    end
  end
  for _, member in ipairs(never) do
    bury(member, 'a delayed message due at +inf: never')
  end
  next_due = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')[2] or false
end

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
return {next_due, claimed, more, buried, problems}
