-- Declare one market suspension, atomically: its record, its dates and its outbox event are
-- written together, or (a retry) nothing is written.
--
-- Every key comes in KEYS (all share the {alloc} hash tag), named by SuspensionStore.declare:
--   KEYS[1]            the market's hash of suspension records (id -> JSON)
--   KEYS[2]            the outbox stream
--   KEYS[3 .. 2+n]     the suspended-date keys of the n dates, in the order of a.days
--   KEYS[3+n]          the idempotency record, when a.idempotent
-- ARGV[1] is one JSON object of named inputs; optional parts (event) are absent, never null.
--   id, record (the record's JSON), reason, days (count n), idempotent, body_hash, idem_ttl,
--   event {topic, key, event_id, type, value}
-- Returns {'ok', id} (declared now), {'replay', id} (this Idempotency-Key declared it before),
-- {'exists', id} (a suspension with this id exists: a redelivery or an echo) or
-- {'err', 'idempotency_key_reused'}.
local a = cjson.decode(ARGV[1])
local records, outbox = KEYS[1], KEYS[2]
local idem = KEYS[3 + a.days]

if a.idempotent then
  local prior = redis.call('HMGET', idem, 'hash', 'suspension')
  if prior[1] then
    if prior[1] == a.body_hash then return {'replay', prior[2]} end
    return {'err', 'idempotency_key_reused'}
  end
end
if redis.call('HEXISTS', records, a.id) == 1 then return {'exists', a.id} end

redis.call('HSET', records, a.id, a.record)
for i = 1, a.days do
  redis.call('SET', KEYS[2 + i], a.reason)
end
if a.idempotent then
  redis.call('HSET', idem, 'hash', a.body_hash, 'suspension', a.id)
  redis.call('EXPIRE', idem, a.idem_ttl)
end
local e = a.event
if e then
  redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
    'type', e.type, 'value', e.value)
end
return {'ok', a.id}
