-- Replace one task's result whole, set its time to live, and tell whoever waits
-- for it on the channel named like the key: the record itself when it is at
-- most ARGV[3] bytes, else an empty message ("read the key"). One result key,
-- so legal on a cluster; a batch of results is a pipeline of calls.
-- KEYS[1] result list; ARGV record, ttl_ms, publish_max_bytes
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if #ARGV[1] <= tonumber(ARGV[3]) then
    redis.call('PUBLISH', KEYS[1], ARGV[1])
else
    redis.call('PUBLISH', KEYS[1], '')
end
return 1
