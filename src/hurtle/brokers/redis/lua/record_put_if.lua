-- Set a record only if its value is the one the caller expects, in one step: a
-- compare-and-set (periodic tasks' leader lease and last ticks). One key, so
-- legal on a cluster. Redis drops an expired key itself, so "no live value" is
-- "no key".
-- KEYS[1] record string; ARGV value, ttl_ms, has_current (1 or 0), current.
-- Returns 1 when set, 0 when the record held something else.

local old = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if old ~= ARGV[4] then
    return 0
  end
elseif old then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
