-- Heartbeat: the holder claims its own entries again (JUSTID: the delivery count
-- stays), which resets their idle time, so the lease runs another full term.
-- KEYS[1] stream; ARGV[1] group, then (entry id, consumer, deliveries) triples.
local stream, group = KEYS[1], ARGV[1]
local done = 0
for i = 2, #ARGV, 3 do
  if held(stream, group, ARGV[i], ARGV[i + 1], ARGV[i + 2]) then
    redis.call('XCLAIM', stream, group, ARGV[i + 1], 0, ARGV[i], 'JUSTID')
    done = done + 1
  end
end
return done
