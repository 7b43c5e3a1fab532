-- Lift one market suspension, atomically: its dates from a.reopened_from on reopen unless
-- another suspension still in force covers them (then they keep that one's reason), the record
-- is marked lifted, and the outbox event is written.
--
-- Every key comes in KEYS (all share the {alloc} hash tag), named by SuspensionStore.lift:
--   KEYS[1]            the market's hash of suspension records (id -> JSON)
--   KEYS[2]            the outbox stream
--   KEYS[2 + i]        the suspended-date key of a.days[i]
-- ARGV[1] is one JSON object of named inputs; optional parts (event) are absent, never null.
--   id, lifted_at, reopened_from, days (ISO dates), event {topic, key, event_id, type, value}
-- Returns {'ok', record} (lifted now), {'lifted', record} (it was lifted before: nothing is
-- written) or {'err', 'suspension_not_found'}.
local a = cjson.decode(ARGV[1])
local records, outbox = KEYS[1], KEYS[2]

local function in_force(record)
  return record.lifted_at == nil or record.lifted_at == cjson.null
end

local raw = redis.call('HGET', records, a.id)
if not raw then return {'err', 'suspension_not_found'} end
local record = cjson.decode(raw)
if not in_force(record) then return {'lifted', raw} end

local others = {}
local all = redis.call('HGETALL', records)
for i = 1, #all, 2 do
  if all[i] ~= a.id then
    local other = cjson.decode(all[i + 1])
    if in_force(other) then table.insert(others, other) end
  end
end

for i, day in ipairs(a.days) do
  -- The latest declared suspension still covering the date gives its reason.
  local reason, latest = nil, nil
  for _, other in ipairs(others) do
    local declared = other.declared_at
    if type(declared) ~= 'string' then declared = '' end
    if other.first_date <= day and day <= other.last_date
        and (latest == nil or declared >= latest) then
      reason, latest = other.reason, declared
    end
  end
  if reason then
    redis.call('SET', KEYS[2 + i], reason)
  else
    redis.call('DEL', KEYS[2 + i])
  end
end

record.lifted_at = a.lifted_at
record.reopened_from = a.reopened_from
local updated = cjson.encode(record)
redis.call('HSET', records, a.id, updated)
local e = a.event
if e then
  redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
    'type', e.type, 'value', e.value)
end
return {'ok', updated}
