-- The lease of the replica running an asynchronous job. Times are Redis's own (TIME), so
-- replicas with skewed clocks agree on whose lease ran out.
-- KEYS[1]: the job hash (keyspace.job).
-- ARGV[1]: "create" | "renew" | "adopt"; ARGV[2]: owner; ARGV[3]: lease (ms);
-- ARGV[4]: the hash's TTL (s): the retention, plus the lease while the job is in flight,
-- so a job outlives its retention while it runs;
--   create: then field, value pairs of the record; renew: ARGV[5]: a new state ("" keeps it).
-- Returns {outcome, lease expiry (ms) or 0}: create -> "created"; renew -> the state
-- ("lost" when another replica holds it); adopt -> "adopted" | "alive" | the state, or
-- "gone".
local now = redis.call("TIME")
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
if ARGV[1] == "create" then
  redis.call("HSET", KEYS[1], "state", "queued", "owner", ARGV[2], "lease", expiry,
    unpack(ARGV, 5))
  redis.call("EXPIRE", KEYS[1], ARGV[4])
  return {"created", expiry}
end
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return {"gone", 0}
end
if state ~= "queued" and state ~= "running" then
  return {state, 0}
end
local fields = redis.call("HMGET", KEYS[1], "owner", "lease")
if ARGV[1] == "renew" then
  if fields[1] ~= ARGV[2] then
    return {"lost", 0}
  end
  if ARGV[5] ~= "" then
    redis.call("HSET", KEYS[1], "state", ARGV[5])
    state = ARGV[5]
  end
  redis.call("HSET", KEYS[1], "lease", expiry)
  redis.call("EXPIRE", KEYS[1], ARGV[4])
  return {state, expiry}
end
if tonumber(fields[2]) >= expiry - tonumber(ARGV[3]) then
  return {"alive", tonumber(fields[2])}
end
redis.call("HSET", KEYS[1], "owner", ARGV[2], "lease", expiry)
redis.call("EXPIRE", KEYS[1], ARGV[4])
return {"adopted", expiry}
