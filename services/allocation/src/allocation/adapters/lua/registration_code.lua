-- Check a registration's code, atomically. KEYS[1]: the registration. ARGV: the digest of the
-- code given, the attempts allowed. A registration for a number that is already registered has
-- no code (''): every code is wrong, exactly as a wrong code is for any other.
-- Returns {'ok', fields} (the registration is consumed), {'invalid', attempts left} (none
-- left: it is void and gone) or {'not_found'} (never made, expired, void or consumed).
local registration = KEYS[1]
if redis.call('EXISTS', registration) == 0 then return {'not_found'} end
local code = redis.call('HGET', registration, 'code')
if code and code ~= '' and code == ARGV[1] then
  local fields = redis.call('HGETALL', registration)
  redis.call('DEL', registration)
  return {'ok', fields}
end
local left = tonumber(ARGV[2]) - redis.call('HINCRBY', registration, 'attempts', 1)
if left <= 0 then
  redis.call('DEL', registration)
  left = 0
end
return {'invalid', left}
