-- Acknowledge finished entries: XACK and XDEL in one step, so the stream only
-- ever holds waiting and leased entries and never grows without bound.
-- KEYS[1] stream; ARGV group, consumer, lowest and highest entry id, lines "entry-id deliveries"
-- (checked: held by the consumer as that delivery), and lines "entry-id" (not checked: the
-- worker leased them so recently that no other consumer can hold them; settling.py).
-- Returns how many ids it acknowledged (a checked one whose lease was taken over is left alone).
local stream, group = KEYS[1], ARGV[1]
local ids, n = {}, 0
if ARGV[5] ~= '' then
  ids = held_batch(stream, group, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
  n = #ids
end
for id in string.gmatch(ARGV[6], '%S+') do
  n = n + 1
  ids[n] = id
end
call_in_chunks(ids, function(chunk) return {'XACK', stream, group, unpack(chunk)} end)
call_in_chunks(ids, function(chunk) return {'XDEL', stream, unpack(chunk)} end)
return n
