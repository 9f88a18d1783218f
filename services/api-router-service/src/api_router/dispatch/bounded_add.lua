-- Adds a job to a node's stream unless the node's backlog is at its limit, atomically.
-- The backlog is what the node still owes: jobs delivered but not acknowledged (pending)
-- plus jobs not yet delivered (lag). XLEN would overcount: acknowledged entries behind a
-- long-running job stay in the stream until that job is acknowledged.
-- KEYS[1] the node's job stream
-- ARGV[1] backlog limit; ARGV[2] consumer group; ARGV[3..] the job's field/value pairs
-- Returns the new entry id; 0 when the node is full; -1 when the node has no job stream
-- (its worker creates it, so there is nobody to take the job).
-- XINFO GROUPS fails on a missing key: that answers EXISTS too, one call fewer per job.
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) == 'table' and groups.err then
  return -1
end
local backlog = nil
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  if info['name'] == ARGV[2] and type(info['lag']) == 'number' then
    backlog = info['pending'] + info['lag']
  end
end
if backlog == nil then
  -- Redis cannot tell the lag (entries were deleted mid-stream): count every entry.
  backlog = redis.call('XLEN', KEYS[1])
end
if backlog >= tonumber(ARGV[1]) then
  return 0
end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
