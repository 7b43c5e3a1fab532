-- A vendor's application to a draw (new, or changed preferences), while the draw is open.
-- KEYS: draw, applications, vendor_applications, vendor_active, vendor_week, vendor_history,
-- suspended (the market's suspension on the date), vendor.
-- ARGV[1]: JSON {vendor_id, member, starts_at, ends_at, week, application, weekly_cap,
-- draw_at, now, date, opens_priority, opens_standard, categories, market_categories}:
-- categories are those of the ranked stalls (none: "any stall", and then one of the market's
-- market_categories must be permitted).
-- A vendor's pending applications are kept as member -> "start_ts,end_ts,week" so that one body
-- is in one place (no two overlapping applications, none overlapping an active booking) and
-- applications and bookings together stay within the weekly cap.
-- Returns {'ok', 'created'|'updated'} or {'err', code[, detail]}.
local draw, apps, vapps, active, vweek = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local history, suspended, vendor = KEYS[6], KEYS[7], KEYS[8]
local a = cjson.decode(ARGV[1])

-- The vendor as verified on the window's date, read as book.lua reads it (unverified claims are
-- not in these fields; '' or absent expiry: never; dates compare as text).
local v = redis.call('HMGET', vendor, 'priority', 'categories', 'suspended_until', 'priority_until')
if not v[1] then return {'err', 'vendor_not_found'} end
if tonumber(v[3] or '0') > a.now then return {'err', 'vendor_suspended', v[3]} end
local priority = v[1] == '1' and (not v[4] or v[4] == '' or v[4] >= a.date)
if a.now < (priority and a.opens_priority or a.opens_standard) then
  return {'err', 'outside_booking_horizon'}
end
local function permitted(category)
  if not string.find(',' .. (v[2] or '') .. ',', ',' .. category .. ',', 1, true) then
    return false
  end
  local last = redis.call('HGET', vendor, 'cat_until:' .. category)
  return not last or last == '' or last >= a.date
end
if #a.categories > 0 then
  for _, category in ipairs(a.categories) do
    if not permitted(category) then return {'err', 'category_not_permitted'} end
  end
else
  local any = false
  for _, category in ipairs(a.market_categories) do
    if permitted(category) then any = true break end
  end
  if not any then return {'err', 'category_not_permitted'} end
end
local state = redis.call('HGET', draw, 'state')
if not state then return {'err', 'draw_not_found'} end
if state ~= 'open' then return {'err', 'applications_closed'} end
if redis.call('EXISTS', suspended) == 1 then return {'err', 'market_suspended'} end
local existing = redis.call('HEXISTS', apps, a.vendor_id) == 1
if not existing then
  local function span(text)
    local c1 = string.find(text, ',', 1, true)
    local c2 = string.find(text, ',', c1 + 1, true)
    local s = tonumber(string.sub(text, 1, c1 - 1))
    local e = tonumber(string.sub(text, c1 + 1, (c2 or 0) - 1))
    return s, e, c2 and string.sub(text, c2 + 1) or nil
  end
  local mine = redis.call('HGETALL', vapps)
  local same_week = 0
  for i = 1, #mine, 2 do
    local s, e, week = span(mine[i + 1])
    if s < a.ends_at and e > a.starts_at then return {'err', 'overlapping_application', mine[i]} end
    if week == a.week then same_week = same_week + 1 end
  end
  local spans = redis.call('HGETALL', active)
  for i = 1, #spans, 2 do
    local s, e = span(spans[i + 1])
    if s < a.ends_at and e > a.starts_at then return {'err', 'overlapping_booking', spans[i]} end
  end
  if redis.call('SCARD', vweek) + same_week >= a.weekly_cap then
    return {'err', 'weekly_cap_reached'}
  end
end
redis.call('HSET', apps, a.vendor_id, a.application)
redis.call('HSET', vapps, a.member, a.starts_at .. ',' .. a.ends_at .. ',' .. a.week)
redis.call('ZADD', history, a.draw_at, a.member)
return {'ok', existing and 'updated' or 'created'}
