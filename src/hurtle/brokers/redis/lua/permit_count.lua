-- How many live permits a concurrency limit (permit_take.lua) holds: expired
-- members linger until the next take removes them.
-- KEYS[1] permit ZSET. Returns the count.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
