-- Withdraw a vendor's application while the draw is open.
-- KEYS: draw, applications, vendor_applications, vendor_history. ARGV: vendor_id, member.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'err', 'application_not_found'} end
if state ~= 'open' then return {'err', 'applications_closed'} end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return {'err', 'application_not_found'} end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
return {'ok', ''}
