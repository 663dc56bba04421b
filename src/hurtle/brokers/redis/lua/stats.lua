-- Counts of one queue: {ready, delayed, in flight, dead, age of the oldest ready
-- entry in ms}. Ready counts entries never delivered and entries whose lease ran
-- out; in flight, live leases.
-- The age, by the server's clock (the one entry ids come from): of an entry never
-- delivered, since it entered the stream (its id's time: sent, due from the
-- delayed set, or sent again by a retry); of one whose lease ran out, since the
-- lease ended (idle minus the holder's lease), but never before its id's time (an
-- entry a stopping worker gave back reads as idle since the epoch). 0 when none
-- is ready.
-- A key another program gave the wrong type counts as empty (a fetch skips the
-- queue and says so in the worker's log): stats never fail on it.
-- KEYS[1] stream, KEYS[2] delayed set, KEYS[3] dead stream; ARGV group, default_lease_ms
local stream, group, default_lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
local now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function size(command, key)
  local n = redis.pcall(command, key)
  if failed(n) then
    return 0
  end
  return n
end
local function added_ms(entry_id)
  return tonumber(string.match(entry_id, '^(%d+)')) or now_ms
end
local oldest_ms = 0
local function waited(ms)
  if ms > oldest_ms then
    oldest_ms = ms
  end
end
local pending, stale = 0, 0
for _, consumer in ipairs(consumers(stream, group)) do
  if consumer.pending > 0 then
    pending = pending + consumer.pending
    local rows, lease = expired(stream, group, consumer.name, default_lease, consumer.pending)
    stale = stale + #rows
    for _, row in ipairs(rows) do
      waited(math.min(tonumber(row[3]) - lease, now_ms - added_ms(row[1])))
    end
  end
end
-- Acknowledged entries are deleted, so the stream holds the pending ones and
-- those never delivered: the first past the group's last delivered id is the oldest.
local undelivered = math.max(0, size('XLEN', stream) - pending)
if undelivered > 0 then
  local start = '-'
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if not failed(groups) then
    for _, row in ipairs(groups) do
      local info = field_map(row)
      if info['name'] == group then
        start = '(' .. info['last-delivered-id']
      end
    end
  end
  local first = redis.pcall('XRANGE', stream, start, '+', 'COUNT', 1)
  if not failed(first) and first[1] ~= nil then
    waited(now_ms - added_ms(first[1][1]))
  end
end
return {undelivered + stale, size('ZCARD', KEYS[2]), pending - stale, size('XLEN', KEYS[3]), oldest_ms}
