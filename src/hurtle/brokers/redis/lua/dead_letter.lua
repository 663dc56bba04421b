-- Move a held entry to the queue's dead-letter stream, with why, atomically.
-- The dead letter is added first and the entry deleted last: Redis does not undo
-- a script that fails half-way, and an add that fails (the dead key holds another
-- type) must leave the entry held, to be delivered again.
-- KEYS[1] stream, KEYS[2] dead stream
-- ARGV: group, entry id, consumer, deliveries, message id, body, reason, failed_at
local stream, dead, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
if not held(stream, group, id, ARGV[3], ARGV[4]) then
  return 0
end
add(dead, 'id', ARGV[5], 'body', ARGV[6], 'reason', ARGV[7], 'failed_at', ARGV[8])
redis.call('XACK', stream, group, id)
redis.call('XDEL', stream, id)
return 1
