-- End an asynchronous job: its owner stores the answer ("done"), or its tenant cancels it.
-- KEYS[1]: the job hash. ARGV[1]: "finish" | "cancel"; ARGV[2]: the owner (finish) or the
-- tenant (cancel); ARGV[3]: the answer (finish); ARGV[4]: retention (s).
-- Returns the state the job is in afterwards, "lost" (finish: not the owner any more) or
-- "missing" (no such job of this tenant).
local fields = redis.call("HMGET", KEYS[1], "state", "owner", "tenant")
local state = fields[1]
if not state then
  return "missing"
end
if ARGV[1] == "cancel" then
  if fields[3] ~= ARGV[2] then
    return "missing"
  end
  if state == "queued" or state == "running" then
    redis.call("HSET", KEYS[1], "state", "cancelled")
    redis.call("EXPIRE", KEYS[1], ARGV[4])
    return "cancelled"
  end
  return state
end
if (state ~= "queued" and state ~= "running") or fields[2] ~= ARGV[2] then
  return "lost"
end
redis.call("HSET", KEYS[1], "state", "done", "answer", ARGV[3])
redis.call("EXPIRE", KEYS[1], ARGV[4])
return "done"
