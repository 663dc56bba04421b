-- Acknowledge finished entries: XACK and XDEL in one step, so the stream only
-- ever holds waiting and leased entries and never grows without bound.
-- KEYS[1] stream; ARGV group, consumer, lowest and highest entry id, lines "entry-id deliveries".
-- Returns how many were still held (an expired, taken-over lease is a no-op).
local stream, group = KEYS[1], ARGV[1]
local ids = held_batch(stream, group, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
call_in_chunks(ids, function(chunk) return {'XACK', stream, group, unpack(chunk)} end)
call_in_chunks(ids, function(chunk) return {'XDEL', stream, unpack(chunk)} end)
return #ids
