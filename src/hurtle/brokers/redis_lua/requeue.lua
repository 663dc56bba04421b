-- Put dead letters back on their queue's stream: the ones named, or else the
-- oldest `limit`. KEYS[1] dead stream, KEYS[2] stream; ARGV limit, entry ids...
-- Returns how many moved.
local dead, stream = KEYS[1], KEYS[2]
local entries = {}
if #ARGV == 1 then
  entries = redis.call('XRANGE', dead, '-', '+', 'COUNT', tonumber(ARGV[1]))
else
  for i = 2, #ARGV do
    local found = redis.call('XRANGE', dead, ARGV[i], ARGV[i])
    if found[1] then
      table.insert(entries, found[1])
    end
  end
end
for _, entry in ipairs(entries) do
  local fields = field_map(entry[2])
  add(stream, 'id', fields['id'] or entry[1], 'body', fields['body'] or '')
  redis.call('XDEL', dead, entry[1])
end
return #entries
