-- Give unstarted entries back: idle since the epoch (TIME 0), so every lease has
-- run out and the next reclaim delivers them at once; RETRYCOUNT takes this
-- delivery back out of the count.
-- KEYS[1] stream; ARGV[1] group, then (entry id, consumer, deliveries) triples.
local stream, group = KEYS[1], ARGV[1]
local done = 0
for i = 2, #ARGV, 3 do
  if held(stream, group, ARGV[i], ARGV[i + 1], ARGV[i + 2]) then
    local before = tonumber(ARGV[i + 2]) - 1
    redis.call('XCLAIM', stream, group, ARGV[i + 1], 0, ARGV[i], 'TIME', 0, 'RETRYCOUNT', before, 'JUSTID')
    done = done + 1
  end
end
return done
