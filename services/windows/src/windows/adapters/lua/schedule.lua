-- Schedule timers of one market, idempotently: a timer already published is not re-added.
-- KEYS (all in the market's {w:<shard>} slot): timers (zset id -> due ms + rank / 8),
-- boundaries (hash id -> timer JSON), published (zset id -> publish ms).
local timers, boundaries, published = KEYS[1], KEYS[2], KEYS[3]
-- ARGV[1]: {"items": [{"id", "score", "json"}, ...]}
local a = cjson.decode(ARGV[1])
local added = 0
for _, item in ipairs(a.items) do
  if not redis.call('ZSCORE', published, item.id) then
    added = added + redis.call('ZADD', timers, item.score, item.id)
    redis.call('HSET', boundaries, item.id, item.json)
  end
end
local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
return {added, first[2] or ''}
