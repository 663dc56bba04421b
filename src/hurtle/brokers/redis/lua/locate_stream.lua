-- One chunk of a look by task id: of the next `count` entries of one queue's
-- stream after `start`, those whose message id is wanted, each with where it is:
-- 'running' (leased, its holder's lease alive) or 'queued' (never delivered, or
-- its lease ran out). The client calls this chunk after chunk, so Redis is never
-- held for longer than `count` entries take. Returns {the last entry id read,
-- or false at the end of the stream; {message id, where, ...}}.
-- KEYS[1] stream; ARGV group, default_lease_ms, start ('-' or '(' .. id), count,
-- wanted message ids one per line
local stream, group, default_lease = KEYS[1], ARGV[1], tonumber(ARGV[2])
local count = tonumber(ARGV[4])
local wanted = {}
for id in string.gmatch(ARGV[5], '[^\n]+') do
  wanted[id] = true
end
local entries = redis.call('XRANGE', stream, ARGV[3], '+', 'COUNT', count)
local found = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then
      if wanted[fields[i + 1]] then
        local where = 'queued'
        local row = redis.pcall('XPENDING', stream, group, entry[1], entry[1], 1)
        if not row.err and row[1] ~= nil and tonumber(row[1][3]) < lease_ms(row[1][2], default_lease) then
          where = 'running'
        end
        found[#found + 1] = fields[i + 1]
        found[#found + 1] = where
      end
      break
    end
  end
end
local last = false
if #entries == count then
  last = entries[#entries][1]
end
return {last, found}
