-- Gather members of a set by index, each only if absent, and count the set, in
-- one step (a chord's members: ``RecordStore.gather``). One key, so legal on a
-- cluster, and atomic without MULTI.
-- KEYS[1] hash; ARGV ttl_ms, then index and value pairs.
-- Returns, per pair: 1 if added (0 if already there), then the count after it.

local replies = {}
for i = 2, #ARGV - 1, 2 do
  replies[#replies + 1] = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  replies[#replies + 1] = redis.call('HLEN', KEYS[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return replies
