-- Writes a worker event unless the job's gateway abandoned it: `accepted` starts a job,
-- and every `chunk` of a streamed job goes through here too, so a cancelled stream stops
-- at its next chunk at no extra cost.
-- KEYS[1] the job's cancel key; KEYS[2] the reply stream (same hash tag)
-- ARGV field/value pairs of the event
-- Returns 1 when written, 0 when the job was cancelled, -1 when the gateway is gone
-- (its reply stream no longer exists; NOMKSTREAM keeps it from being recreated).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not redis.call('XADD', KEYS[2], 'NOMKSTREAM', '*', unpack(ARGV)) then
  return -1
end
return 1
