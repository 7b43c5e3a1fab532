-- Schedule a window occurrence's draw once: its secret seed and salt, the seed's commitment,
-- the draw time; the draw.scheduled event goes to the outbox in the same step.
-- KEYS: draw, draws_due, outbox. ARGV[1]: JSON {seed, salt, commitment, draw_at, member, event}.
local draw, due, outbox = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', draw) == 1 then return 0 end
local a = cjson.decode(ARGV[1])
redis.call('HSET', draw, 'state', 'open', 'seed', a.seed, 'salt', a.salt,
  'commitment', a.commitment, 'draw_at', a.draw_at)
redis.call('ZADD', due, a.draw_at, a.member)
local e = a.event
redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
  'type', e.type, 'value', e.value)
return 1
