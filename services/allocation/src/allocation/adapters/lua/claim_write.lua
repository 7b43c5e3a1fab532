-- Write one eligibility claim (a new one, or one staff decided) if the vendor's claims did not
-- change since the caller read them (their version); with a decision, the vendor's verified
-- eligibility (the fields book.lua reads) and its event are written in the same step.
-- KEYS: vendor, claims, the queue the claim leaves, the queue it joins, outbox.
-- ARGV[1]: JSON {version, claim_id, claim, member, score, fields (optional), event (optional)}.
-- Returns 'ok', 'retry' (the claims changed: read again) or 'vendor_not_found'.
local vendor, claims, from_queue, to_queue, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local a = cjson.decode(ARGV[1])
if redis.call('EXISTS', vendor) == 0 then return 'vendor_not_found' end
if (redis.call('HGET', vendor, 'claims_version') or '0') ~= a.version then return 'retry' end
redis.call('HSET', claims, a.claim_id, a.claim)
redis.call('ZREM', from_queue, a.member)
redis.call('ZADD', to_queue, a.score, a.member)
if a.fields then
  local flat = {}
  for name, value in pairs(a.fields) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  redis.call('HSET', vendor, unpack(flat))
end
redis.call('HINCRBY', vendor, 'claims_version', 1)
if a.event then
  local e = a.event
  redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
    'type', e.type, 'value', e.value)
end
return 'ok'
