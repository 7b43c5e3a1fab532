-- Move a draw from one state to the next, once: open -> closed (applications stop),
-- closed -> drawn (inputs and result stored), drawn -> done (the draw.completed event).
-- KEYS: draw, outbox. ARGV[1]: JSON {from, to, fields: {name: value}, event?}.
-- Returns 1 if this call moved it, 0 if it was already past ``from``, -1 if not there yet.
local a = cjson.decode(ARGV[1])
local order = {open = 1, closed = 2, drawn = 3, done = 4}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state ~= a.from then
  if order[state] > order[a.from] then return 0 end
  return -1
end
local args = {'state', a.to}
for name, value in pairs(a.fields) do
  args[#args + 1] = name
  args[#args + 1] = value
end
redis.call('HSET', KEYS[1], unpack(args))
if a.event then
  local e = a.event
  redis.call('XADD', KEYS[2], '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
    'type', e.type, 'value', e.value)
end
return 1
