-- Admission: checks every limit of a request and debits them all, or none (one round trip).
-- Time is Redis TIME: gateways with skewed clocks cannot mint tokens.
-- KEYS[1..n]  one per check (token bucket hash or lease sorted set); KEYS[n+1] the budget
-- ARGV[1] request id (lease member)   ARGV[2] lease ms   ARGV[3] longest queue wait ms
-- ARGV[4] budget limit (0: none)      ARGV[5] budget reservation   ARGV[6] budget TTL s
-- ARGV[7..] per check: kind ("b" bucket | "l" lease), capacity, refill per second, cost
-- Returns {code, check index, ms, observed, month, budget spent, r1, t1, r2, t2, ...}:
--   code 0 admitted; 1 admitted after waiting `ms` for check `index` (the debit is taken
--   now, so the wait is a reservation of the bucket's future tokens); 2 denied by check `index`, retry after
--   `ms` (-1: never fits); 3 denied by the budget. `observed` is the level that denied it.
--   `budget spent`: the month's spend with this request's reservation (admitted only).
--   r/t per check: remaining and seconds until full (for the RateLimit header).
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)
local month = month_of(tonumber(time[1]))
local n = (#ARGV - 6) / 4
local max_wait_us = tonumber(ARGV[3]) * 1000

local budget_limit = tonumber(ARGV[4])
local budget_cost = tonumber(ARGV[5])
local spent = 0
if budget_limit > 0 then
  spent = tonumber(redis.call('HGET', KEYS[n + 1], month) or '0')
  if spent >= budget_limit or spent + budget_cost > budget_limit then
    return {3, 0, 0, spent, month}
  end
end

local function bucket_level(key, capacity, rate)
  local stored = redis.call('HMGET', key, 'tokens', 'ts')
  if not stored[1] then
    return capacity -- a missing bucket is a full one (buckets expire once full)
  end
  local elapsed = math.max(0, now_us - tonumber(stored[2]))
  return math.min(capacity, tonumber(stored[1]) + elapsed / 1000000 * rate)
end

local levels = {}
local wait_us, waited = 0, 0
local denied, denied_us, lease_denied = nil, 0, nil
for i = 1, n do
  local base = 6 + (i - 1) * 4
  local capacity, rate, cost = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4])
  if ARGV[base + 1] == 'b' then
    local level = bucket_level(KEYS[i], capacity, rate)
    levels[i] = level
    if cost > capacity then
      return {2, i, -1, math.floor(level), month}
    end
    if level < cost then
      local need_us = (cost - level) / rate * 1000000
      if need_us > max_wait_us then
        if denied == nil or need_us > denied_us then
          denied, denied_us = i, need_us
        end
      elseif need_us > wait_us then
        wait_us, waited = need_us, i
      end
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now_ms) -- leases that expired
    local count = redis.call('ZCARD', KEYS[i])
    levels[i] = count
    if count >= capacity and lease_denied == nil then
      lease_denied = i
    end
  end
end
if lease_denied ~= nil then
  return {2, lease_denied, 1000, levels[lease_denied], month}
end
if denied ~= nil then
  return {2, denied, math.ceil(denied_us / 1000), math.floor(levels[denied]), month}
end

local observed = waited > 0 and math.floor(levels[waited]) or 0
local result = {wait_us > 0 and 1 or 0, waited, math.ceil(wait_us / 1000), observed, month,
  spent + budget_cost}
for i = 1, n do
  local base = 6 + (i - 1) * 4
  local capacity, rate, cost = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
    tonumber(ARGV[base + 4])
  if ARGV[base + 1] == 'b' then
    local level = levels[i] - cost
    redis.call('HSET', KEYS[i], 'tokens', string.format('%.6f', level),
      'ts', string.format('%.0f', now_us))
    local full_in_s = (capacity - level) / rate
    -- Expire once full again: a missing bucket reads as full, so nothing is lost.
    redis.call('PEXPIRE', KEYS[i], math.ceil(full_in_s * 1000) + 1000)
    result[#result + 1] = math.max(0, math.floor(level))
    result[#result + 1] = math.ceil(full_in_s)
  else
    redis.call('ZADD', KEYS[i], now_ms + tonumber(ARGV[2]), ARGV[1])
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) + 1000)
    result[#result + 1] = capacity - levels[i] - 1
    result[#result + 1] = 0
  end
end
if budget_limit > 0 and budget_cost > 0 then
  redis.call('HINCRBY', KEYS[n + 1], month, budget_cost)
  redis.call('EXPIRE', KEYS[n + 1], tonumber(ARGV[6]))
end
return result
