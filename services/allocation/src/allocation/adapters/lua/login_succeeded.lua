-- A login succeeded: remember its client address for the number, forget the failures counted
-- for the number from that address, and give back the attempt to the other counters it was
-- counted on (a success is not a failure).
-- KEYS: the number's known addresses (sorted set), the (address, number) counter, then the
-- counters to give one attempt back to (any number of them).
-- ARGV: the address, the time of the success, how many addresses to keep, their lifetime (s).
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 1
