-- Take permits of a rate limit: GCRA, the token bucket kept as one number, its
-- theoretical arrival time (TAT, ms on the server's clock), in one step. One
-- key, so legal on a cluster. The arithmetic is hurtle.limit_store.gcra_take's.
-- KEYS[1] rate string (the TAT); ARGV interval_ms, burst, count.
-- Returns {granted, wait_ms as text}: how many permits were taken, and the
-- milliseconds until the next one (Lua numbers reply as integers; text keeps the
-- fraction).

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval, burst, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
-- A value another program left that is not a number reads as an empty bucket.
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if tat < now then
  tat = now
end
-- 0.001 ms early is on time: ms since the epoch are exact to about 0.0002 ms in a
-- double, and a permit due now must not read as 0.999... of one.
local fits = math.floor((burst * interval - (tat - now) + 0.001) / interval)
local granted = math.max(0, math.min(fits, count))
tat = tat + granted * interval
if granted > 0 then
  -- Past its TAT the bucket is full whether the key is kept or not.
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return {granted, string.format('%.3f', math.max(0, tat - (burst - 1) * interval - now))}
