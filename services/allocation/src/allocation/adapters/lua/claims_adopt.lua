-- Turn the eligibility a vendor typed before claims existed into claims, once: the stated
-- values become pending claims and stop counting until staff verify them.
-- KEYS: vendor, claims, the queue of pending claims. ARGV[1]: JSON {vendor_id, claims: [{id,
-- json, score}], fields: {name: value}}. Returns 1 if adopted, 0 if the vendor has claims already.
local vendor, claims, queue = KEYS[1], KEYS[2], KEYS[3]
local a = cjson.decode(ARGV[1])
if redis.call('EXISTS', vendor) == 0 then return 0 end
if redis.call('HEXISTS', vendor, 'claims_version') == 1 then return 0 end
for _, c in ipairs(a.claims) do
  redis.call('HSET', claims, c.id, c.json)
  redis.call('ZADD', queue, c.score, a.vendor_id .. '|' .. c.id)
end
local flat = {}
for name, value in pairs(a.fields) do
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end
redis.call('HSET', vendor, unpack(flat))
return 1
