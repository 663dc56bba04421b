-- How many entries one queue's stream ever took in: XINFO STREAM's entries-added
-- (Redis 7.0 and newer), read here so the first and last entries XINFO also
-- returns never cross the network. -1 when the server does not say (older Redis).
-- A stream not made yet took in nothing: 0. Purging deletes entries, never the
-- stream, so the count only grows.
-- KEYS[1] stream
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local added = field_map(redis.call('XINFO', 'STREAM', KEYS[1]))['entries-added']
if added == nil then
  return -1
end
return added
