-- Compare-and-set transitions of many jobs, each with its index moves, event (and history, past
-- maxlen events) and outbox messages. The transitions are applied one after another; each is
-- checked against the state the ones before it left.
-- ARGV: prefix, terminal statuses (comma separated), dedup statuses (comma separated), maxlen,
--       then for each transition:
--         spec: a JSON array of strings: job_id, expected, target, now_ms, stage ('' = unchanged),
--           error_json ('' = keep, '-' = clear), attempts_delta, expected_attempts ('' = any),
--           lease_ms ('' = keep, 0 = clear), attempts_set ('' = use the delta), output_stage
--           ('' = none), stage_errors ('' = keep), stage_losses ('' = keep), retry_in_ms
--           ('' = clear next_attempt_at)
--         event_json (an object without "seq" and "attempts": this script adds them),
--         output_json, message count n, then n times: topic, key, value, event_id, headers_json
--         (the messages are appended to the outbox stream in the same step; values stay bytes)
-- One EVALSHA carries a whole batch: the per-command cost of the call, its argument parsing and
-- the client's packing are paid once per batch instead of once per job.
-- Returns one reply per transition, in order: {1, seq, attempts} or {-1} not found,
--   {-2, status} stale, {-3, attempts} wrong attempt, {-4, other_job_id} a different live job
--   holds the doc (retry refused), {-9, message} the transition raised (its writes until then
--   stay, as with any script; the ones after it still run)
local p, terminal_list, dedup_list, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local function member(list, value)
  return string.find(',' .. list .. ',', ',' .. value .. ',', 1, true) ~= nil
end

-- a transition's hash fields are gathered and written in one HSET and at most one HDEL: each
-- redis.call costs about as much again as the command it runs. apply() starts both lists anew
local sets, dels = {}, {}
local function put(field, value)
  sets[#sets + 1] = field
  sets[#sets + 1] = value
end
local function drop(field, present)
  if present then dels[#dels + 1] = field end
end

local function apply(spec, event_json, output_json, b, count)
  local a = cjson.decode(spec)
  local id, expected, target, now = a[1], a[2], a[3], a[4]
  local key = p .. 'job:' .. id
  local cur = redis.call('HMGET', key, 'status', 'tenant_id', 'attempts', 'stage', 'doc_key',
    'priority', 'event_seq', 'error', 'next_attempt_at', 'started_at', 'finished_at',
    'lease_expires_at')
  local status, tenant, attempts = cur[1], cur[2], tonumber(cur[3])
  local old_stage, doc_key = cur[4], cur[5]
  if not status then return {-1} end
  if status ~= expected then return {-2, status} end
  if a[8] ~= '' and attempts ~= tonumber(a[8]) then return {-3, attempts} end

  if target == 'queued' and expected ~= 'queued' then
    -- leaving a terminal state: take the (tenant, doc_key) slot back unless someone else holds it
    local idem = p .. 'idem:' .. tenant .. '|' .. doc_key
    local holder = redis.call('GET', idem)
    if holder and holder ~= id then
      local hs = redis.call('HGET', p .. 'job:' .. holder, 'status')
      if hs and member(dedup_list, hs) then return {-4, holder} end
    end
    redis.call('SET', idem, id)
  end

  sets, dels = {}, {}
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

  local stage = a[5]
  if stage ~= '' and stage ~= old_stage then
    if old_stage then redis.call('ZREM', p .. 'idx:stage:' .. old_stage, id) end
    redis.call('ZADD', p .. 'idx:stage:' .. stage, 0, id)
    put('stage', stage)
  end

  if a[6] == '-' then
    drop('error', cur[8])
  elseif a[6] ~= '' then
    put('error', a[6])
  end

  if a[10] ~= '' then
    attempts = tonumber(a[10])
  else
    attempts = attempts + tonumber(a[7])
  end
  if a[11] ~= '' then put('out:' .. a[11], output_json) end
  put('attempts', attempts)
  put('updated_at', now)
  if a[12] ~= '' then put('stage_errors', a[12]) end
  if a[13] ~= '' then put('stage_losses', a[13]) end
  if a[14] ~= '' then
    put('next_attempt_at', tonumber(now) + tonumber(a[14]))
  else
    drop('next_attempt_at', cur[9])
  end
  if target == 'processing' and status == 'queued' and not cur[10] then put('started_at', now) end
  local terminal = member(terminal_list, target)
  if terminal then
    put('finished_at', now)
  elseif target == 'queued' then
    drop('finished_at', cur[11])
  end

  local lease = a[9]
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
  local encoded = '{"seq":' .. seq .. ',"attempts":' .. attempts .. ',' .. string.sub(event_json, 2)
  if seq > tonumber(maxlen) then
    -- the XADD below may trim the stream: the history list first takes every event up to this
    -- one. It is always a whole prefix (events 1..LLEN) and the stream holds every later event,
    -- since only an XADD past maxlen trims it; below maxlen the stream alone is the history
    local history = key .. ':history'
    local kept = redis.call('LLEN', history)
    if kept < seq - 1 then
      local later = {}
      for _, entry in ipairs(redis.call('XRANGE', key .. ':events', (kept + 1) .. '-0', '+')) do
        later[#later + 1] = entry[2][2]
      end
      if #later > 0 then redis.call('RPUSH', history, unpack(later)) end
    end
    redis.call('RPUSH', history, encoded)
  end
  redis.call('XADD', key .. ':events', 'MAXLEN', '~', maxlen, seq .. '-0', 'e', encoded)
  for i = b, b + 5 * (count - 1), 5 do
    redis.call('XADD', p .. 'outbox', '*', 't', ARGV[i], 'k', ARGV[i + 1], 'v', ARGV[i + 2],
      'id', ARGV[i + 3], 'h', ARGV[i + 4])
  end

  return {1, seq, attempts}
end

local replies = {}
local i, n = 5, #ARGV
while i <= n do
  local count = tonumber(ARGV[i + 3])
  local ok, reply = pcall(apply, ARGV[i], ARGV[i + 1], ARGV[i + 2], i + 4, count)
  if not ok then
    reply = {-9, type(reply) == 'table' and (reply.err or '?') or tostring(reply)}
  end
  replies[#replies + 1] = reply
  i = i + 4 + 5 * count
end
return replies
