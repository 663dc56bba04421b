-- Add to one tally and raise its highest fields, then set its time to live, in one
-- step. One key, so legal on a cluster.
-- KEYS[1] tally hash; ARGV ttl_ms, n, then n (field, count) pairs, then the
-- (field, value) pairs to raise to at least their value.

-- True when the decimal integer text a is greater than b: exact past 2^53, where
-- Lua's numbers (doubles) are not.
local function int_greater(a, b)
  local a_negative, b_negative = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if a_negative ~= b_negative then
    return b_negative
  end
  if a_negative then
    a, b = b:sub(2), a:sub(2)
  end
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end

local last_count = 2 + 2 * tonumber(ARGV[2])
for i = 3, last_count, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = last_count + 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or int_greater(ARGV[i + 1], old) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
