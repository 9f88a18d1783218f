-- Takes or keeps the lease on probing one direct node, so that one gateway replica at a
-- time probes it. SET NX PX takes a free lease; its holder renews it (PEXPIRE) on each
-- round; a holder that stops renewing loses it when it expires.
-- KEYS[1] the node's probe lease
-- ARGV[1] this replica's id; ARGV[2] the lease's time to live (ms)
-- Returns 1 when this replica holds the lease now, 0 when another one does.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
