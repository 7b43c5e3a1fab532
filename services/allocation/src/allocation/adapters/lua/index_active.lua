-- Add a vendor's active bookings to the active-bookings index the booking script's overlap
-- check reads (bookings made before the index existed). Idempotent; safe beside live traffic:
-- each booking's state is read here, atomically with the write.
-- KEYS[1]: the vendor's active-bookings hash; KEYS[2..]: booking hashes (read by the caller
-- from the vendor's bookings, all in the {alloc} slot). ARGV[1]: JSON {"since": epoch seconds}:
-- bookings that ended before it cannot overlap anything bookable and are left out.
local a = cjson.decode(ARGV[1])
local added = 0
for i = 2, #KEYS do
  local b = redis.call('HMGET', KEYS[i], 'id', 'state', 'start_ts', 'end_ts')
  if (b[2] == 'booked' or b[2] == 'checked_in') and tonumber(b[4]) > a.since then
    added = added + redis.call('HSETNX', KEYS[1], b[1], b[3] .. ',' .. b[4])
  end
end
return added
