-- Claim an Idempotency-Key, or say who has it. One script: two replicas that get the same
-- key at once cannot both see it free.
-- KEYS[1]: the key (keyspace.idempotency). The value: one state byte ("r" running, "d"
-- done), the 64-hex fingerprint, the 32-hex owner, then the running request's id or the
-- stored answer.
-- ARGV: fingerprint, owner, request id, lease (ms).
-- Returns {"claimed"} | {"mismatch"} | {"running", request id, ms left} | {"done", answer}.
local value = redis.call("GET", KEYS[1])
if not value then
  redis.call("SET", KEYS[1], "r" .. ARGV[1] .. ARGV[2] .. ARGV[3], "PX", ARGV[4])
  return {"claimed"}
end
if string.sub(value, 2, 65) ~= ARGV[1] then
  return {"mismatch"}
end
if string.sub(value, 1, 1) == "r" then
  return {"running", string.sub(value, 98), redis.call("PTTL", KEYS[1])}
end
return {"done", string.sub(value, 98)}
