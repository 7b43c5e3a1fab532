-- Claim every due boundary of one market, in order, exactly once: each is removed from the
-- timers, recorded as published (with the publish time) and its envelope appended to the
-- market's outbox, all in one atomic step, so concurrent claimers never publish one twice.
-- KEYS (all in the market's {w:<shard>} slot): timers, boundaries, published, outbox.
local timers, boundaries, published, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- ARGV[1]: {"now_ms", "due_by", "retain_ms", "maxlen", "events": {id: {"topic", "key", "event_id",
-- "type", "value"} or {"record_only": true}}}. Envelopes are rendered and validated in Python
-- from the boundaries read before the call; the script only decides.
local a = cjson.decode(ARGV[1])
redis.call('ZREMRANGEBYSCORE', published, '-inf', a.now_ms - a.retain_ms)
local due = redis.call('ZRANGEBYSCORE', timers, '-inf', a.due_by)
local claimed = {}
for _, id in ipairs(due) do
  local ev = a.events[id]
  -- scheduled after the caller read: stop here to keep the order; the next call takes it
  if not ev then break end
  redis.call('ZREM', timers, id)
  redis.call('HDEL', boundaries, id)
  redis.call('ZADD', published, a.now_ms, id)
  if not ev.record_only then
    redis.call('XADD', outbox, 'MAXLEN', '~', a.maxlen, '*',
      'topic', ev.topic, 'key', ev.key, 'event_id', ev.event_id, 'type', ev.type,
      'value', ev.value)
  end
  claimed[#claimed + 1] = id
end
local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
return {claimed, first[2] or ''}
