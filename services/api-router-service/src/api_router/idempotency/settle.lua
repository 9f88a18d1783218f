-- End a claim of an Idempotency-Key: store its answer, or release the key. Only the
-- claim's owner may (a claim whose lease ran out and was taken again is someone else's).
-- KEYS[1]: the key. ARGV: fingerprint, owner, answer ("" releases), retention (ms).
-- Returns 1 when done, 0 when the claim was no longer ours.
local value = redis.call("GET", KEYS[1])
if not value or string.sub(value, 1, 97) ~= "r" .. ARGV[1] .. ARGV[2] then
  return 0
end
if ARGV[3] == "" then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], "d" .. ARGV[1] .. ARGV[2] .. ARGV[3], "PX", ARGV[4])
end
return 1
