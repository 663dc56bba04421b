-- Put the named dead letters back on their queue's stream. Each is added to the
-- stream before it is deleted from the dead letters (see dead_letter.lua).
-- KEYS[1] dead stream, KEYS[2] stream; ARGV entry ids.
-- Returns, flat, each moved dead letter's entry id and message id.
local dead, stream = KEYS[1], KEYS[2]
local moved = {}
for i = 1, #ARGV do
  local found = redis.call('XRANGE', dead, ARGV[i], ARGV[i])
  local entry = found[1]
  if entry then
    local fields = field_map(entry[2])
    local id = fields['id'] or entry[1]
    add(stream, 'id', id, 'body', fields['body'] or '')
    redis.call('XDEL', dead, entry[1])
    table.insert(moved, entry[1])
    table.insert(moved, id)
  end
end
return moved
