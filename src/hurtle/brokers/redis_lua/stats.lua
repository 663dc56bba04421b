-- Counts of one queue: {ready, delayed, in flight, dead}. Ready counts entries
-- never delivered and entries whose lease ran out; in flight, live leases.
-- KEYS[1] stream, KEYS[2] delayed set, KEYS[3] dead stream; ARGV group, default_lease_ms
local stream, group, default_lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
local pending, stale = 0, 0
for _, consumer in ipairs(consumers(stream, group)) do
  if consumer.pending > 0 then
    pending = pending + consumer.pending
    stale = stale + #expired(stream, group, consumer.name, default_lease, consumer.pending)
  end
end
-- Acknowledged entries are deleted, so the stream holds the pending ones and
-- those never delivered.
local undelivered = math.max(0, redis.call('XLEN', stream) - pending)
return {undelivered + stale, redis.call('ZCARD', KEYS[2]), pending - stale, redis.call('XLEN', KEYS[3])}
