-- Helpers shared by every hurtle script: the loader puts this file in front of
-- each one (lanes.py, script_source). Plain Redis 6.2+ Lua, RESP2 replies.

-- {k1, v1, k2, v2, ...} -> {k1 = v1, k2 = v2, ...}
local function field_map(flat)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

-- A consumer's lease in ms: hurtle names consumers HOST/PID/TOKEN/LEASE_MS, so
-- every reclaimer honours the lease of the worker that holds an entry, not its own.
local function lease_ms(consumer, default)
  return tonumber(string.match(consumer, '/(%d+)$')) or default
end

-- The consumers of a group as {name, pending, idle}; none when the group or the
-- stream does not exist.
local function consumers(stream, group)
  local rows = redis.pcall('XINFO', 'CONSUMERS', stream, group)
  if rows.err then
    return {}
  end
  local found = {}
  for i, row in ipairs(rows) do
    local info = field_map(row)
    found[i] = {name = info['name'], pending = tonumber(info['pending']), idle = tonumber(info['idle'])}
  end
  return found
end

-- The pending entries of one consumer whose lease ran out (idle >= its lease).
local function expired(stream, group, consumer, default_lease, count)
  local lease = lease_ms(consumer, default_lease)
  return redis.call('XPENDING', stream, group, 'IDLE', lease, '-', '+', count, consumer), lease
end

-- True when `consumer` still holds entry `id` as delivery number `deliveries`:
-- the fencing token of a lease, so a worker whose lease expired and was taken
-- over cannot ack, extend, retry or dead-letter the new holder's delivery.
local function held(stream, group, id, consumer, deliveries)
  local found = redis.pcall('XPENDING', stream, group, id, id, 1, consumer)
  if found.err or found[1] == nil then
    return false
  end
  return tonumber(found[1][4]) == tonumber(deliveries)
end

-- Of one consumer's batch, ids LOW to HIGH given as lines "id deliveries\n..."
-- (one argument: the client packs 1 argument, not 2 per entry), the entries the
-- consumer still holds as that delivery: their ids and delivery counts (two
-- lists, in the batch's order).
-- One XPENDING over the range, not one per entry; the lines are read once.
local function held_batch(stream, group, consumer, low, high, lines)
  local wanted_ids, wanted_counts, wanted = {}, {}, 0
  for id, deliveries in string.gmatch(lines, '(%S+) (%d+)') do
    wanted = wanted + 1
    wanted_ids[wanted] = id
    wanted_counts[wanted] = tonumber(deliveries)
  end
  -- the range may hold other entries the consumer is running: ask for room
  local limit = wanted * 2 + 100
  local rows = redis.pcall('XPENDING', stream, group, low, high, limit, consumer)
  if rows.err then
    return {}, {}
  end
  local counts = {}
  for i = 1, #rows do
    local row = rows[i]
    counts[row[1]] = row[4]
  end
  local complete = #rows < limit
  local ids, held_counts, held_n = {}, {}, 0
  for i = 1, wanted do
    local id = wanted_ids[i]
    local count = counts[id]
    if count == nil and not complete then -- past the rows asked for: ask for it alone
      local row = redis.call('XPENDING', stream, group, id, id, 1, consumer)
      if row[1] ~= nil then count = row[1][4] end
    end
    if count == wanted_counts[i] then
      held_n = held_n + 1
      ids[held_n] = id
      held_counts[held_n] = count
    end
  end
  return ids, held_counts
end

-- Run `command ... ids` over `ids` 1,000 at a time (Lua's unpack has a limit).
local function call_in_chunks(ids, build)
  for first = 1, #ids, 1000 do
    local chunk = {}
    for i = first, math.min(first + 999, #ids) do chunk[#chunk + 1] = ids[i] end
    redis.call(unpack(build(chunk)))
  end
end

-- Split a delayed-set member "<message id>\n<body>"; nil for a member without the
-- newline (written by another program: it is dead-lettered, never promoted).
local function split_member(member)
  local cut = string.find(member, '\n', 1, true)
  if cut == nil then
    return nil, nil
  end
  return string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
end

-- True when `reply` is an error (from redis.pcall).
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- Stream ids from the server clock in microseconds: <ms>-<us within the ms * 10^6 + n>.
-- With '*' each stream numbers the entries of one millisecond from 0, so entries
-- of two queues added in the same millisecond could not be told apart by age;
-- these sort by when they were added, across every stream of this server.
local clock = redis.call('TIME')
local id_prefix = (tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)) .. '-'
local id_seq = (tonumber(clock[2]) % 1000) * 1000000
local id_mode = {} -- per stream: 'clock' once an add with the clock's id worked, else '*'
local function xadd(command, stream, ...)
  id_seq = id_seq + 1
  local mode = id_mode[stream]
  if mode == 'clock' then
    -- (Lua prints these integers, all below 2^53, whole: no string.format per entry)
    return command('XADD', stream, id_prefix .. id_seq, ...)
  elseif mode == '*' then
    return command('XADD', stream, '*', ...)
  end
  -- The first add to a stream tells whether its ids are already past this clock
  -- (the clock went back, or another producer's '*' ids): then '*' keeps its
  -- order. Within one script the clock's ids only grow: the rest need no check.
  local added = redis.pcall('XADD', stream, id_prefix .. id_seq, ...)
  if failed(added) then
    id_mode[stream] = '*'
    return command('XADD', stream, '*', ...)
  end
  id_mode[stream] = 'clock'
  return added
end

-- XADD an entry with the clock's id; an error ends the script.
local function add(stream, ...)
  return xadd(redis.call, stream, ...)
end

-- `add`, but an error (the key holds another type) is returned, as redis.pcall does.
local function try_add(stream, ...)
  return xadd(redis.pcall, stream, ...)
end
