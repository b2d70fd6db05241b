-- Rebuild a counter from the system of record after Redis lost it; never lowers a live counter.
-- KEYS[1] counter hash   ARGV: period, consumed, refunded, counter_ttl_s
local h = redis.call('HMGET', KEYS[1], 'period', 'consumed', 'refunded')
if h[1] == ARGV[1] then
  local consumed = math.max(tonumber(h[2]) or 0, tonumber(ARGV[2]))
  local refunded = math.max(tonumber(h[3]) or 0, tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'consumed', consumed, 'refunded', refunded)
elseif not h[1] then
  redis.call('HSET', KEYS[1], 'period', ARGV[1], 'consumed', ARGV[2], 'refunded', ARGV[3])
end
if tonumber(ARGV[4]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 1
