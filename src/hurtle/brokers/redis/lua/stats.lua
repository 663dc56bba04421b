-- Counts of one queue: {ready, delayed, in flight, dead}. Ready counts entries
-- never delivered and entries whose lease ran out; in flight, live leases.
-- A key another program gave the wrong type counts as empty (a fetch skips the
-- queue and says so in the worker's log): stats never fail on it.
-- KEYS[1] stream, KEYS[2] delayed set, KEYS[3] dead stream; ARGV group, default_lease_ms
local stream, group, default_lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
local function size(command, key)
  local n = redis.pcall(command, key)
  if failed(n) then
    return 0
  end
  return n
end
local pending, stale = 0, 0
for _, consumer in ipairs(consumers(stream, group)) do
  if consumer.pending > 0 then
    pending = pending + consumer.pending
    stale = stale + #expired(stream, group, consumer.name, default_lease, consumer.pending)
  end
end
-- Acknowledged entries are deleted, so the stream holds the pending ones and
-- those never delivered.
local undelivered = math.max(0, size('XLEN', stream) - pending)
return {undelivered + stale, size('ZCARD', KEYS[2]), pending - stale, size('XLEN', KEYS[3])}
