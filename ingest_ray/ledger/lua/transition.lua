-- Compare-and-set transition of one job, with its index moves, history and event in one step.
-- ARGV: prefix, job_id, expected, target, now_ms, stage ('' = unchanged), error_json ('' = keep,
--       '-' = clear), attempts_delta, expected_attempts ('' = any), lease_ms ('' = keep, 0 = clear),
--       maxlen, event_json (an object without "seq" and "attempts": this script adds them),
--       terminal statuses (comma separated), dedup statuses (comma separated),
--       attempts_set ('' = use the delta), output_stage ('' = none), output_json,
--       stage_errors ('' = keep), stage_losses ('' = keep), retry_in_ms ('' = clear
--       next_attempt_at), message count n, then n times: topic, key, value, event_id, headers_json
--       (the messages are appended to the outbox stream in this same step)
-- Returns {1, seq, attempts} or {-1} not found, {-2, status} stale, {-3, attempts} wrong attempt,
--         {-4, other_job_id} a different live job holds the doc (retry refused)
local p, id, expected, target, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = p .. 'job:' .. id
local cur = redis.call('HMGET', key, 'status', 'tenant_id', 'attempts', 'stage', 'doc_key',
  'priority', 'event_seq', 'error', 'next_attempt_at', 'started_at', 'finished_at',
  'lease_expires_at')
local status, tenant, attempts, old_stage, doc_key = cur[1], cur[2], tonumber(cur[3]), cur[4], cur[5]
if not status then return {-1} end
if status ~= expected then return {-2, status} end
if ARGV[9] ~= '' and attempts ~= tonumber(ARGV[9]) then return {-3, attempts} end

local function member(list, value)
  return string.find(',' .. list .. ',', ',' .. value .. ',', 1, true) ~= nil
end

if target == 'queued' and expected ~= 'queued' then
  -- leaving a terminal state: take the (tenant, doc_key) slot back unless someone else holds it
  local idem = p .. 'idem:' .. tenant .. '|' .. doc_key
  local holder = redis.call('GET', idem)
  if holder and holder ~= id then
    local hs = redis.call('HGET', p .. 'job:' .. holder, 'status')
    if hs and member(ARGV[14], hs) then return {-4, holder} end
  end
  redis.call('SET', idem, id)
end

-- the hash's fields are gathered and written in one HSET and at most one HDEL: each
-- redis.call costs about as much again as the command it runs
local sets, dels = {}, {}
local function put(field, value)
  sets[#sets + 1] = field
  sets[#sets + 1] = value
end
local function drop(field, present)
  if present then dels[#dels + 1] = field end
end

if target ~= status then
  redis.call('ZREM', p .. 'idx:status:' .. status, id)
  redis.call('ZREM', p .. 'idx:tenant:' .. tenant .. ':status:' .. status, id)
  redis.call('ZADD', p .. 'idx:status:' .. target, 0, id)
  redis.call('ZADD', p .. 'idx:tenant:' .. tenant .. ':status:' .. target, 0, id)
  put('status', target)
  -- the fair backlog index (idx:fair:{tenant}|{priority}) holds exactly the queued jobs
  local group = tenant .. '|' .. (cur[6] or '5')
  if status == 'queued' then
    redis.call('ZREM', p .. 'idx:fair:' .. group, id)
    if redis.call('EXISTS', p .. 'idx:fair:' .. group) == 0 then
      redis.call('SREM', p .. 'idx:fair-groups', group)
    end
  elseif target == 'queued' then
    redis.call('ZADD', p .. 'idx:fair:' .. group, 0, id)
    redis.call('SADD', p .. 'idx:fair-groups', group)
  end
end

local stage = ARGV[6]
if stage ~= '' and stage ~= old_stage then
  if old_stage then redis.call('ZREM', p .. 'idx:stage:' .. old_stage, id) end
  redis.call('ZADD', p .. 'idx:stage:' .. stage, 0, id)
  put('stage', stage)
end

if ARGV[7] == '-' then
  drop('error', cur[8])
elseif ARGV[7] ~= '' then
  put('error', ARGV[7])
end

if ARGV[15] ~= '' then
  attempts = tonumber(ARGV[15])
else
  attempts = attempts + tonumber(ARGV[8])
end
if ARGV[16] ~= '' then put('out:' .. ARGV[16], ARGV[17]) end
put('attempts', attempts)
put('updated_at', now)
if ARGV[18] ~= '' then put('stage_errors', ARGV[18]) end
if ARGV[19] ~= '' then put('stage_losses', ARGV[19]) end
if ARGV[20] ~= '' then
  put('next_attempt_at', tonumber(now) + tonumber(ARGV[20]))
else
  drop('next_attempt_at', cur[9])
end
if target == 'processing' and status == 'queued' and not cur[10] then put('started_at', now) end
local terminal = member(ARGV[13], target)
if terminal then
  put('finished_at', now)
elseif target == 'queued' then
  drop('finished_at', cur[11])
end

local lease = ARGV[10]
if terminal or target == 'queued' or lease == '0' then
  redis.call('ZREM', p .. 'leases', id)
  drop('lease_expires_at', cur[12])
elseif lease ~= '' then
  local expires = tonumber(now) + tonumber(lease)
  redis.call('ZADD', p .. 'leases', expires, id)
  put('lease_expires_at', expires)
end

local seq = (tonumber(cur[7]) or 0) + 1
put('event_seq', seq)
redis.call('HSET', key, unpack(sets))
if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
-- the event arrives as a JSON object without seq and attempts: prefix them (cheaper than
-- decoding and encoding it here)
local encoded = '{"seq":' .. seq .. ',"attempts":' .. attempts .. ',' .. string.sub(ARGV[12], 2)
redis.call('XADD', key .. ':events', 'MAXLEN', '~', ARGV[11], seq .. '-0', 'e', encoded)
redis.call('RPUSH', key .. ':history', encoded)
local count = tonumber(ARGV[21] or '0')
for i = 0, count - 1 do
  local b = 22 + i * 5
  redis.call('XADD', p .. 'outbox', '*', 't', ARGV[b], 'k', ARGV[b + 1], 'v', ARGV[b + 2],
    'id', ARGV[b + 3], 'h', ARGV[b + 4])
end
return {1, seq, attempts}
