-- Replace a held entry by its next attempt, atomically: into the delayed set
-- when its eta is in the future, else onto the stream. The next attempt is added
-- first and the entry deleted last (see dead_letter.lua).
-- KEYS[1] stream, KEYS[2] delayed set
-- ARGV: group, entry id, consumer, deliveries, message id, body, eta_ms ('' = now), now_ms
local stream, delayed, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if not held(stream, group, id, ARGV[3], ARGV[4]) then
  return 0 -- the lease ran out and another worker holds the message now
end
local eta = tonumber(ARGV[7])
if eta ~= nil and eta > tonumber(ARGV[8]) then
  redis.call('ZADD', delayed, eta, ARGV[5] .. '\n' .. ARGV[6])
else
  add(stream, 'id', ARGV[5], 'body', ARGV[6])
end
redis.call('XACK', stream, group, id)
redis.call('XDEL', stream, id)
return 1
