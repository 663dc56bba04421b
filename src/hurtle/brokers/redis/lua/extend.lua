-- Heartbeat: the holder claims its own entries again (JUSTID: the delivery count
-- stays), which resets their idle time, so the lease runs another full term.
-- KEYS[1] stream; ARGV group, consumer, lowest and highest entry id, lines "entry-id deliveries".
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local ids = held_batch(stream, group, consumer, ARGV[3], ARGV[4], ARGV[5])
call_in_chunks(ids, function(chunk)
  local command = {'XCLAIM', stream, group, consumer, 0, unpack(chunk)}
  command[#command + 1] = 'JUSTID'
  return command
end)
return #ids
