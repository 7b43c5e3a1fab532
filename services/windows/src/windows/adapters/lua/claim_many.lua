-- The fast claim of many markets of one shard at once: every due timer claimed on time is
-- removed, recorded as published and its envelope (rendered when it was scheduled) appended to
-- the shard's outbox, in order, in one atomic step. A market stops at its first timer that is
-- late (its envelope must say how late) or was stored without an envelope: the caller claims
-- the rest of that market through claim.lua.
-- KEYS: for each market its timers, boundaries and published (in the shard's {w:<n>} slot),
-- then the shard's outbox.
local outbox = KEYS[#KEYS]
-- ARGV[1]: {"now_ms", "due_by", "tolerance_ms", "retain_ms", "maxlen"}
local a = cjson.decode(ARGV[1])
local results = {}
for m = 1, (#KEYS - 1) / 3 do
  local timers, boundaries, published = KEYS[3 * m - 2], KEYS[3 * m - 1], KEYS[3 * m]
  redis.call('ZREMRANGEBYSCORE', published, '-inf', a.now_ms - a.retain_ms)
  local due = redis.call('ZRANGEBYSCORE', timers, '-inf', a.due_by, 'WITHSCORES')
  local taken = {}
  local rest = 0
  for i = 1, #due, 2 do
    local id, due_ms = due[i], math.floor(tonumber(due[i + 1]))
    local raw = redis.call('HGET', boundaries, id)
    local t = raw and cjson.decode(raw)
    if not t or not t.rendered or a.now_ms - due_ms > a.tolerance_ms then
      rest = (#due - i + 1) / 2
      break
    end
    local r = t.rendered
    redis.call('ZREM', timers, id)
    redis.call('HDEL', boundaries, id)
    redis.call('ZADD', published, a.now_ms, id)
    redis.call('XADD', outbox, 'MAXLEN', '~', a.maxlen, '*',
      'topic', r.topic, 'key', r.key, 'event_id', r.event_id, 'type', r.type, 'value', r.value)
    taken[#taken + 1] = id
    taken[#taken + 1] = t.kind
    taken[#taken + 1] = tostring(due_ms)
  end
  local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
  results[m] = {taken, first[2] or '', rest}
end
return results
