-- One chunk of a look by task id in one queue's delayed set: ZSCAN from
-- `cursor`, returning the wanted message ids among the members it reads. The
-- client calls this chunk after chunk until the cursor is back at 0, so Redis is
-- never held for longer than about `count` members take (ZSCAN returns every
-- member that stays in the set from the first call to the last).
-- Returns {next cursor, {message id, ...}}.
-- KEYS[1] delayed set; ARGV cursor, count, wanted message ids one per line
local wanted = {}
for id in string.gmatch(ARGV[3], '[^\n]+') do
  wanted[id] = true
end
local reply = redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local members, found = reply[2], {}
for i = 1, #members, 2 do -- member, score, member, score, ...
  local member = members[i]
  local id = string.sub(member, 1, (string.find(member, '\n', 1, true) or 0) - 1)
  if wanted[id] then
    found[#found + 1] = id
  end
end
return {reply[1], found}
