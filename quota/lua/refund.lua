-- Give back one unit charged for a search that failed before its answer; once per search.
-- KEYS[1] counter hash   KEYS[2] usage log stream   KEYS[3] refund marker
-- ARGV: period charged, subject, solution_id, marker_ttl_s, log_maxlen
-- Returns 1 refunded, 0 already refunded or nothing to refund.
local h = redis.call('HMGET', KEYS[1], 'period', 'consumed', 'refunded')
if h[1] ~= ARGV[1] then
  return 0
end
local consumed = tonumber(h[2]) or 0
local refunded = tonumber(h[3]) or 0
if refunded >= consumed then
  return 0
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[4]) then
  return 0
end
refunded = refunded + 1
redis.call('HSET', KEYS[1], 'refunded', refunded)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'subject', ARGV[2], 'solution', ARGV[3],
  'period', ARGV[1], 'consumed', consumed, 'refunded', refunded)
return 1
