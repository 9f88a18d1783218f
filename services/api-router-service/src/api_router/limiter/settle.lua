-- Settlement: replaces a request's reservations with what it used, once it has ended.
-- KEYS[i] one per adjustment; ARGV[4i-3..4i] per adjustment:
--   "b", capacity, refill per second, delta   token bucket: give back (delta > 0) or take
--                                             more (delta < 0), never above capacity
--   "l", request id, -, -                     lease: release it
--   "g", month, delta, TTL s                  budget: correct the month's spend; never
--                                             below zero
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
for i = 1, #KEYS do
  local kind, a, b, c = ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  if kind == 'b' then
    local capacity, rate, delta = tonumber(a), tonumber(b), tonumber(c)
    local stored = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
    local level = capacity
    if stored[1] then
      local elapsed = math.max(0, now_us - tonumber(stored[2]))
      level = math.min(capacity, tonumber(stored[1]) + elapsed / 1000000 * rate)
    end
    level = math.min(capacity, level + delta)
    redis.call('HSET', KEYS[i], 'tokens', string.format('%.6f', level),
      'ts', string.format('%.0f', now_us))
    redis.call('PEXPIRE', KEYS[i], math.ceil((capacity - level) / rate * 1000) + 1000)
  elseif kind == 'l' then
    redis.call('ZREM', KEYS[i], a)
  elseif kind == 'g' then
    local delta = tonumber(b)
    if delta > 0 or redis.call('HEXISTS', KEYS[i], a) == 1 then
      if redis.call('HINCRBY', KEYS[i], a, delta) < 0 then
        redis.call('HSET', KEYS[i], a, 0)
      end
      redis.call('EXPIRE', KEYS[i], tonumber(c))
    end
  end
end
return #KEYS
