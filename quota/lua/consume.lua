-- Check a subject's quota and, unless check_only, count one use; a refused call counts nothing.
-- KEYS[1] counter hash {period, consumed, refunded}   KEYS[2] usage log shard   KEYS[3] idempotency key (optional)
-- ARGV: limit (-1 = unlimited), window ('day'|'total'), utc_offset_s, check_only (0|1),
--       idempotency_ttl_s, subject, solution_id, counter_ttl_s, log_maxlen, request_fingerprint
-- Returns {status, used, limit, period, reset_in_s}: status 1 admitted, 0 refused, -2 needs seeding,
-- -3 the idempotency key was first used with another request (its fingerprint differs).
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1])
local period = 'all'
local reset_in = -1
if ARGV[2] == 'day' then
  local local_s = now + tonumber(ARGV[3])
  local days = math.floor(local_s / 86400)
  reset_in = 86400 - (local_s % 86400)
  -- civil-from-days (Howard Hinnant), so the day is the Redis server's, not an app server's
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  period = string.format('%04d-%02d-%02d', y, m, d)
end

if KEYS[3] then
  local previous = redis.call('GET', KEYS[3])
  if previous then
    local r = cjson.decode(previous)
    if (r[5] or '') ~= (ARGV[10] or '') then
      return {-3, r[2], r[3], r[4], reset_in}
    end
    return {r[1], r[2], r[3], r[4], reset_in}
  end
end

local h = redis.call('HMGET', KEYS[1], 'period', 'consumed', 'refunded')
if not h[1] then
  return {-2, 0, limit, period, reset_in}
end
local consumed = tonumber(h[2]) or 0
local refunded = tonumber(h[3]) or 0
if h[1] ~= period then
  consumed = 0
  refunded = 0
  redis.call('HSET', KEYS[1], 'period', period, 'consumed', 0, 'refunded', 0)
end
local used = consumed - refunded
local status = 1
if limit >= 0 and used >= limit then
  status = 0
elseif ARGV[4] ~= '1' then
  consumed = consumed + 1
  used = used + 1
  redis.call('HSET', KEYS[1], 'consumed', consumed)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'subject', ARGV[6], 'solution', ARGV[7],
    'period', period, 'consumed', consumed, 'refunded', refunded)
end
if tonumber(ARGV[8]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[8])
end
if KEYS[3] and ARGV[4] ~= '1' then
  redis.call('SET', KEYS[3], cjson.encode({status, used, limit, period, ARGV[10] or ''}), 'EX', ARGV[5])
end
return {status, used, limit, period, reset_in}
