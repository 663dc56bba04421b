-- Delete one queue's dead letters and return how many there were, in one step
-- (so a letter added meanwhile is counted and deleted, or kept): the cluster's
-- purge, where a MULTI/EXEC over several queues would cross slots.
-- KEYS[1] dead stream
local count = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return count
