-- Retention: delete one finished job that finished before a cutoff, with everything of it.
-- ARGV: prefix, job_id, before_ms, terminal statuses (comma separated),
--       excluded tenants (JSON array)
-- Returns 1 when the job was deleted, 0 when it is missing, not finished, too young or of an
-- excluded tenant (checked here, atomically, so a job retried meanwhile is never deleted).
local p, id, before = ARGV[1], ARGV[2], tonumber(ARGV[3])
local key = p .. 'job:' .. id
local f = redis.call('HMGET', key, 'status', 'tenant_id', 'doc_key', 'pipeline', 'stage',
  'finished_at')
local status, tenant, doc_key, pipeline, stage = f[1], f[2], f[3], f[4], f[5]
local finished = tonumber(f[6])
if not status or not finished or finished >= before then return 0 end
if not string.find(',' .. ARGV[4] .. ',', ',' .. status .. ',', 1, true) then return 0 end
for _, t in ipairs(cjson.decode(ARGV[5])) do
  if t == tenant then return 0 end
end
local indexes = {'idx:all', 'idx:tenant:' .. tenant, 'idx:status:' .. status,
  'idx:tenant:' .. tenant .. ':status:' .. status, 'idx:pipeline:' .. pipeline,
  'idx:doc:' .. tenant .. '|' .. doc_key}
if stage then table.insert(indexes, 'idx:stage:' .. stage) end
for _, idx in ipairs(indexes) do
  redis.call('ZREM', p .. idx, id)
end
redis.call('ZREM', p .. 'leases', id)
local idem = p .. 'idem:' .. tenant .. '|' .. doc_key
if redis.call('GET', idem) == id then redis.call('DEL', idem) end
redis.call('DEL', key, key .. ':history', key .. ':events')
return 1
