-- Apply a market's plan atomically: emergency-closure changes, withdrawals (each withdrawn
-- window instance announced once with its window.cancelled event), then additions.
-- KEYS (all in the market's {w:<shard>} slot): timers, boundaries, published, outbox, plan.
local timers, boundaries, published, outbox, plan = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
-- ARGV[1]: {"now_ms", "stamp", "from_date", "maxlen", "items": [{"id", "score", "json",
-- "opened_id"}], "valid": {id: true}, "cancels": {instance: {"id", "topic", "key", "event_id",
-- "type", "value"}}, "force": [item], "remove": [id]}. Events are rendered in Python.
local a = cjson.decode(ARGV[1])
local last = tonumber(redis.call('GET', plan) or '0')
if tonumber(a.stamp) < last then return {-1, {}, ''} end
redis.call('SET', plan, a.stamp)

local function started(opened_id)
  return opened_id and opened_id ~= cjson.null and redis.call('ZSCORE', published, opened_id)
end
local function drop(id)
  redis.call('ZREM', timers, id)
  redis.call('HDEL', boundaries, id)
end

-- an emergency closure: the started instance's remaining timers go, its "closed" comes now
for _, id in ipairs(a.remove) do drop(id) end
for _, item in ipairs(a.force) do
  if not redis.call('ZSCORE', published, item.id) then
    redis.call('ZADD', timers, item.score, item.id)
    redis.call('HSET', boundaries, item.id, item.json)
  end
end

-- withdraw planned timers the plan no longer has; never touch a started instance or a past date
local withdrawn = {}
local all = redis.call('HGETALL', boundaries)
for i = 1, #all, 2 do
  local id = all[i]
  if not a.valid[id] then
    local t = cjson.decode(all[i + 1])
    if t.planned then
      if t.instance == cjson.null then
        drop(id)
      elseif t.date >= a.from_date and not started(t.opened_id) then
        local c = a.cancels[t.instance]
        -- no rendered cancellation (scheduled after the caller read): the next plan takes it
        if c then
          drop(id)
          if not redis.call('ZSCORE', published, c.id) then
            redis.call('ZADD', published, a.now_ms, c.id)
            redis.call('XADD', outbox, 'MAXLEN', '~', a.maxlen, '*',
              'topic', c.topic, 'key', c.key, 'event_id', c.event_id, 'type', c.type,
              'value', c.value)
            withdrawn[#withdrawn + 1] = t.instance
          end
        end
      end
    end
  end
end

-- add what is missing: not published yet, instance not started
local added = 0
for _, item in ipairs(a.items) do
  if not redis.call('ZSCORE', published, item.id) and not started(item.opened_id) then
    added = added + redis.call('ZADD', timers, item.score, item.id)
    redis.call('HSET', boundaries, item.id, item.json)
  end
end
local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
return {added, withdrawn, first[2] or ''}
