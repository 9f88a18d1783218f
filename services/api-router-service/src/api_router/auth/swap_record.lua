-- Replace a key record only if it is still the version the caller read (compare and set),
-- and tell every replica in the same step, so no cache can keep the old version.
-- KEYS[1] record key. ARGV[1] expected JSON, ARGV[2] new JSON, ARGV[3] channel, ARGV[4] key id.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
