-- Acknowledges a finished job (if one is given) and trims what is safe to trim: entries
-- below the oldest pending one or, with nothing pending, everything up to the last
-- delivered entry. So the stream never loses an undelivered or unfinished job. A worker
-- runs it every few acks (job_stream.TRIM_EVERY) and when its work pauses, so XLEN stays
-- within that many entries per worker of the node's backlog.
-- KEYS[1] the node's job stream
-- ARGV[1] consumer group; ARGV[2] entry id to acknowledge (none: only trim)
if ARGV[2] then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
if summary[1] > 0 then
  return redis.call('XTRIM', KEYS[1], 'MINID', summary[2])
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  if info['name'] == ARGV[1] then
    local ms, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
    return redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. (tonumber(seq) + 1))
  end
end
return 0
