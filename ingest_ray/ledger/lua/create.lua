-- Idempotent creation of many jobs: one live or completed job per (tenant, doc_key).
-- ARGV: prefix, maxlen, dedup statuses (comma separated), then for each job:
--       job_id, tenant, doc_key, pipeline, priority, metadata_json, now_ms, event_json
-- The jobs are created one after another, so a job sees the ones before it in the batch (a
-- second request for a document finds the job the first one created).
-- Returns one reply per job, in order: {1, job_id, 'queued'} created, {0, holder_id, status}
--   a live or completed job already holds the document, {-9, message} the create raised (a
--   job id collision, or the job holding the document is damaged; the jobs after it still run)
local p, maxlen, dedup = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local function create(i)
  local id, tenant, doc_key, pipeline, priority = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4]
  local now, event = ARGV[i + 6], ARGV[i + 7]
  local idem = p .. 'idem:' .. tenant .. '|' .. doc_key
  local existing = redis.call('GET', idem)
  if existing then
    local st = redis.pcall('HGET', p .. 'job:' .. existing, 'status')
    if type(st) == 'table' and st.err then
      error({err = 'job ' .. existing .. ' holding ' .. doc_key .. ' is damaged: ' .. st.err})
    end
    if st and string.find(',' .. dedup .. ',', ',' .. st .. ',', 1, true) then
      return {0, existing, st}
    end
  end
  local key = p .. 'job:' .. id
  if redis.call('EXISTS', key) == 1 then error({err = 'job id collision ' .. id}) end
  redis.call('HSET', key, 'job_id', id, 'tenant_id', tenant, 'doc_key', doc_key,
    'pipeline', pipeline, 'status', 'queued', 'priority', priority, 'attempts', 0,
    'metadata', ARGV[i + 5], 'created_at', now, 'updated_at', now, 'event_seq', 1)
  redis.call('SET', idem, id)
  redis.call('ZADD', p .. 'idx:all', 0, id)
  redis.call('ZADD', p .. 'idx:tenant:' .. tenant, 0, id)
  redis.call('ZADD', p .. 'idx:status:queued', 0, id)
  redis.call('ZADD', p .. 'idx:tenant:' .. tenant .. ':status:queued', 0, id)
  redis.call('ZADD', p .. 'idx:pipeline:' .. pipeline, 0, id)
  redis.call('ZADD', p .. 'idx:doc:' .. tenant .. '|' .. doc_key, 0, id)
  -- the fair backlog index: queued jobs per (tenant, priority), and the set of such groups
  local group = tenant .. '|' .. priority
  redis.call('ZADD', p .. 'idx:fair:' .. group, 0, id)
  redis.call('SADD', p .. 'idx:fair-groups', group)
  redis.call('XADD', key .. ':events', 'MAXLEN', '~', maxlen, '1-0', 'e', event)
  -- the stream is the history until it may be trimmed (transition.lua keeps the list past that)
  if maxlen < 1 then redis.call('RPUSH', key .. ':history', event) end
  return {1, id, 'queued'}
end

local replies = {}
for i = 4, #ARGV, 8 do
  local ok, reply = pcall(create, i)
  if not ok then
    reply = {-9, type(reply) == 'table' and (reply.err or '?') or tostring(reply)}
  end
  replies[#replies + 1] = reply
end
return replies
