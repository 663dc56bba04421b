-- Acknowledge finished entries: XACK and XDEL in one step, so the stream only
-- ever holds waiting and leased entries and never grows without bound.
-- KEYS[1] stream; ARGV[1] group, then (entry id, consumer, deliveries) triples.
-- Returns how many were still held (an expired, taken-over lease is a no-op).
local stream, group = KEYS[1], ARGV[1]
local done = 0
for i = 2, #ARGV, 3 do
  if held(stream, group, ARGV[i], ARGV[i + 1], ARGV[i + 2]) then
    redis.call('XACK', stream, group, ARGV[i])
    redis.call('XDEL', stream, ARGV[i])
    done = done + 1
  end
end
return done
