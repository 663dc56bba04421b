-- Renew permits of a concurrency limit (permit_take.lua) held by these holders.
-- A permit that expired is not taken back: another holder may have it now.
-- KEYS[1] permit ZSET; ARGV ttl_ms, then the holders. Returns how many were renewed.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]))
  if until_ms and until_ms > now then
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
    renewed = renewed + 1
  end
end
-- The key lives as long as its last permit (holders may lease for different
-- times: never cut another's short).
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
end
return renewed
