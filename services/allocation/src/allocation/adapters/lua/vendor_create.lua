-- Create a vendor, atomically: one account per phone number and per identity.
-- KEYS: phone, identity, vendor, claims, then the claims queues: claimed, verified, rejected.
-- ARGV[1]: JSON {vendor_id, with_identity, fields: {name: value}, claims: [{id, json, status,
-- score}]}. Returns 'created', or why not: 'identity_taken' or 'phone_taken'.
local phone, identity, vendor, claims = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queues = {claimed = KEYS[5], verified = KEYS[6], rejected = KEYS[7]}
local a = cjson.decode(ARGV[1])
if a.with_identity and redis.call('EXISTS', identity) == 1 then return 'identity_taken' end
if redis.call('EXISTS', phone) == 1 then return 'phone_taken' end
redis.call('SET', phone, a.vendor_id)
if a.with_identity then redis.call('SET', identity, a.vendor_id) end
local flat = {}
for name, value in pairs(a.fields) do
  flat[#flat + 1] = name
  flat[#flat + 1] = value
end
redis.call('HSET', vendor, unpack(flat))
for _, c in ipairs(a.claims) do
  redis.call('HSET', claims, c.id, c.json)
  redis.call('ZADD', queues[c.status], c.score, a.vendor_id .. '|' .. c.id)
end
return 'created'
