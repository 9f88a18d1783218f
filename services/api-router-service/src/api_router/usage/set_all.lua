-- The audit trail's recent window, a batch in one call: KEYS[i] is set to ARGV[i + 1],
-- expiring in ARGV[1] seconds.
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
