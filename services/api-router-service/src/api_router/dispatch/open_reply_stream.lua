-- Creates a replica's reply stream, empty and expiring, in one step (a stream cannot be
-- created without an entry: one is added and trimmed away at once). A script rather than
-- a MULTI, so that it runs the same on Redis Cluster (one key, one slot).
-- KEYS[1] the reply stream; ARGV[1] its TTL in seconds
-- Returns the id of the added entry: reading after it skips nothing of value.
local id = redis.call('XADD', KEYS[1], '*', 'type', 'open')
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return id
