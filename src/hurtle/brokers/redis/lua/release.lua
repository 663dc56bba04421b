-- Give unstarted entries back: idle since the epoch (TIME 0), so every lease has
-- run out and the next reclaim delivers them at once; RETRYCOUNT takes this
-- delivery back out of the count.
-- KEYS[1] stream; ARGV group, consumer, lowest and highest entry id, lines "entry-id deliveries".
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local ids, counts = held_batch(stream, group, consumer, ARGV[3], ARGV[4], ARGV[5])
for i, id in ipairs(ids) do
  redis.call('XCLAIM', stream, group, consumer, 0, id, 'TIME', 0, 'RETRYCOUNT', counts[i] - 1, 'JUSTID')
end
return #ids
