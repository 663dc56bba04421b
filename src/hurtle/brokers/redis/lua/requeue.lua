-- Put dead letters back on their queue's stream: the ones named, or else the
-- oldest `limit`. Each is added to the stream before it is deleted from the dead
-- letters (see dead_letter.lua). KEYS[1] dead stream, KEYS[2] stream; ARGV limit, entry ids...
-- Returns, flat, each moved dead letter's entry id and message id.
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
local moved = {}
for _, entry in ipairs(entries) do
  local fields = field_map(entry[2])
  local id = fields['id'] or entry[1]
  add(stream, 'id', id, 'body', fields['body'] or '')
  redis.call('XDEL', dead, entry[1])
  table.insert(moved, entry[1])
  table.insert(moved, id)
end
return moved
