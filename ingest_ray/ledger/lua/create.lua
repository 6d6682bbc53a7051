-- Idempotent job creation: one live or completed job per (tenant, doc_key).
-- ARGV: prefix, job_id, tenant, doc_key, pipeline, priority, metadata_json, now_ms,
--       maxlen, dedup_statuses (comma separated), event_json
-- Returns {created (0|1), job_id, status}
local p, id, tenant, doc_key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local idem = p .. 'idem:' .. tenant .. '|' .. doc_key
local existing = redis.call('GET', idem)
if existing then
  local st = redis.call('HGET', p .. 'job:' .. existing, 'status')
  if st and string.find(',' .. ARGV[10] .. ',', ',' .. st .. ',', 1, true) then
    return {0, existing, st}
  end
end
local key = p .. 'job:' .. id
if redis.call('EXISTS', key) == 1 then
  return redis.error_reply('job id collision ' .. id)
end
local pipeline, now = ARGV[5], ARGV[8]
redis.call('HSET', key, 'job_id', id, 'tenant_id', tenant, 'doc_key', doc_key,
  'pipeline', pipeline, 'status', 'queued', 'priority', ARGV[6], 'attempts', 0,
  'metadata', ARGV[7], 'created_at', now, 'updated_at', now, 'event_seq', 1)
redis.call('SET', idem, id)
for _, idx in ipairs({'idx:all', 'idx:tenant:' .. tenant, 'idx:status:queued',
    'idx:tenant:' .. tenant .. ':status:queued', 'idx:pipeline:' .. pipeline,
    'idx:doc:' .. tenant .. '|' .. doc_key}) do
  redis.call('ZADD', p .. idx, 0, id)
end
-- the fair backlog index: queued jobs per (tenant, priority), and the set of such groups
local group = tenant .. '|' .. ARGV[6]
redis.call('ZADD', p .. 'idx:fair:' .. group, 0, id)
redis.call('SADD', p .. 'idx:fair-groups', group)
redis.call('XADD', key .. ':events', 'MAXLEN', '~', ARGV[9], '1-0', 'e', ARGV[11])
-- the stream is the history until it may be trimmed (transition.lua keeps the list past that)
if tonumber(ARGV[9]) < 1 then redis.call('RPUSH', key .. ':history', ARGV[11]) end
return {1, id, 'queued'}
