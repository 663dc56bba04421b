-- Replace one task's result whole and set its time to live, atomically: the
-- cluster's result store (a MULTI/EXEC over several result keys would cross
-- slots; each result key hashes to a slot of its own).
-- KEYS[1] result list; ARGV record, ttl_ms
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
