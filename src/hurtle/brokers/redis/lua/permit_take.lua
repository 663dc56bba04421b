-- Take permits of a concurrency limit: a counting semaphore whose permits are
-- leases, in one step. One key, so legal on a cluster.
-- KEYS[1] permit ZSET: member a holder, score when its permit expires (ms on the
-- server's clock). ARGV limit, ttl_ms, then the holders asking, in order.
-- Returns how many of the first holders got a permit.

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local given = math.min(tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1]), #ARGV - 2)
if given <= 0 then
  return 0
end
for i = 3, 2 + given do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
-- The key lives as long as its last permit (holders may lease for different
-- times: never cut another's short).
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2])))
end
return given
