-- Settlement: replaces a request's reservations with what it used, once it has ended, and
-- counts what it was charged in its tenant's month (the figures GET /v1/usage reads).
-- ARGV[1] TTL s of a tenant's budget and usage hash; ARGV[2] months it keeps
-- KEYS[i] one per adjustment; ARGV[4i-1..4i+2] per adjustment:
--   "b", capacity, refill per second, delta   token bucket: give back (delta > 0) or take
--                                             more (delta < 0), never above capacity
--   "l", request id, -, -                     lease: release it
--   "g", month, delta, -                      budget: correct the month's spend; never
--                                             below zero
--   "u", month ("": now), model, "p c cost"   usage: one request of `model` charged p
--                                             prompt and c completion tokens and `cost`
--                                             millionths; counted in the month's fields
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ttl, months_kept = tonumber(ARGV[1]), tonumber(ARGV[2])

-- Deletes the fields of months older than the kept ones (fields start with "YYYY-MM").
local function prune(key, month)
  -- The oldest kept month, counted in months from year 0 (zero-based).
  local index = tonumber(month:sub(1, 4)) * 12 + tonumber(month:sub(6, 7)) - months_kept
  local oldest = string.format('%04d-%02d', math.floor(index / 12), index % 12 + 1)
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if field:sub(1, 7) < oldest then
      redis.call('HDEL', key, field)
    end
  end
end

for i = 1, #KEYS do
  local base = 4 * i - 1
  local kind, a, b, c = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
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
      redis.call('EXPIRE', KEYS[i], ttl)
    end
  elseif kind == 'u' then
    local month = a ~= '' and a or month_of(tonumber(time[1]))
    local field = month .. ':' .. b .. ':'
    local counts = {}
    for number in c:gmatch('%d+') do
      counts[#counts + 1] = number
    end
    if redis.call('HINCRBY', KEYS[i], field .. 'requests', 1) == 1 then
      -- The model's first request of the month: prune, and renew the hash's TTL (which
      -- outlasts the kept months, so renewing it monthly is enough: one call fewer per
      -- request than renewing it on every write).
      prune(KEYS[i], month)
      redis.call('EXPIRE', KEYS[i], ttl)
    end
    redis.call('HINCRBY', KEYS[i], field .. 'prompt_tokens', counts[1])
    redis.call('HINCRBY', KEYS[i], field .. 'completion_tokens', counts[2])
    redis.call('HINCRBY', KEYS[i], field .. 'cost', counts[3])
  end
end
return #KEYS
