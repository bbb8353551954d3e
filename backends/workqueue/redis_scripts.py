"""The Lua scripts of the Redis work queue: each state change of a job is one atomic script.

A job's `state` in its hash moves queued -> running -> done, with cancelled / expired / malformed as
other ends; `attempt` counts claims and fences every write a worker makes (publish, ack, release,
renew): a worker whose lease ran out and whose job another worker took over can no longer change it.
Times come from the Redis clock (TIME), so machines with skewed clocks agree on leases.

Script results are short arrays of strings and integers, read by backends/workqueue/redis_queue.py.
"""

from __future__ import annotations

from backends.workqueue.redis_keys import MEMBER_ID_OFFSET, RedisKeys

_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- a wake-up token for the deployment's idle workers; a few suffice (each woken worker claims a batch)
local function wake(dep)
  if redis.call('LLEN', k_wake(dep)) < 16 then redis.call('LPUSH', k_wake(dep), '1') end
end

-- redis.call(cmd, key, values[first..]) in chunks (Lua's unpack takes a few thousand values at most);
-- the last chunk's reply
local function call_chunked(cmd, key, values, first)
  local reply = nil
  for i = first, #values, 1000 do
    reply = redis.call(cmd, key, unpack(values, i, math.min(i + 999, #values)))
  end
  return reply
end

-- the job leaves the running set: its lease, its deployment's in-flight set and token count
local function leave_running(id, dep, tokens)
  redis.call('ZREM', k_leases(), id)
  if dep then
    if redis.call('SREM', k_running(dep), id) == 1 then
      redis.call('DECRBY', k_tokens(dep), tonumber(tokens) or 0)
    end
  end
end

local function end_job(id, state, ttl_s)
  redis.call('HSET', k_job(id), 'state', state)
  redis.call('EXPIRE', k_job(id), ttl_s)
  redis.call('EXPIRE', k_log(id), ttl_s)
end

-- a running job goes back to its queue at its old place (its worker died or handed it back);
-- one whose client is gone is ended instead
local function requeue(id, ttl_s)
  local h = redis.call('HMGET', k_job(id), 'state', 'dep', 'member', 'score', 'tokens', 'cancel')
  if not h[1] then
    redis.call('ZREM', k_leases(), id)
    return 0
  end
  leave_running(id, h[2], h[5])
  if h[1] ~= 'running' then return 0 end
  if h[6] == '1' then
    end_job(id, 'cancelled', ttl_s)
    return 0
  end
  redis.call('HSET', k_job(id), 'state', 'queued', 'owner', '')
  redis.call('ZADD', k_queue(h[2]), h[4], h[3])
  wake(h[2])
  return 1
end
"""

# ARGV: job_id, deployment, job JSON, priority delay (s), max depth, reply inbox id, est tokens,
#       waiting TTL (s), deadline in (ms from now, 0 = none)
_SUBMIT = """
local id, dep = ARGV[1], ARGV[2]
local q = k_queue(dep)
local depth = redis.call('ZCARD', q)
if depth >= tonumber(ARGV[5]) then return {0, depth} end
local jk = k_job(id)
if redis.call('HSETNX', jk, 'state', 'queued') == 0 then return {-1, depth} end
local now = now_ms()
local seq = redis.call('INCR', k_seq())
local member = string.format('%016d:%s', seq, id)
local score = string.format('%.3f', now / 1000 + tonumber(ARGV[4]))
local deadline = 0
if tonumber(ARGV[9]) > 0 then deadline = now + tonumber(ARGV[9]) end
redis.call('HSET', jk, 'spec', ARGV[3], 'dep', dep, 'member', member, 'score', score, 'attempt', 0, 'reply', ARGV[6], 'tokens', ARGV[7], 'deadline', deadline)
redis.call('EXPIRE', jk, ARGV[8])
redis.call('ZADD', q, score, member)
wake(dep)
return {1, depth + 1}
"""

# ARGV: owner id, lease (ms), max jobs, result TTL (s), number of deployments, deployments...
# Returns {claimed, skipped}: claimed = {{job_id, attempt, job JSON, {log entries...}}, ...};
# skipped = {{member or job id, why}, ...} for the caller to log.
# One deployment (a worker's usual claim): its best entries come off in one ZPOPMIN. Several: the lowest
# score among their heads, one entry at a time. A first attempt has no log yet, so only retries read it.
_CLAIM = f"""
local now = now_ms()
local lease_ms, max_jobs, ttl_s = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', k_leases(), '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do requeue(id, ttl_s) end
local deps = {{}}
for i = 6, 5 + tonumber(ARGV[5]) do deps[#deps + 1] = ARGV[i] end

-- up to n of the best waiting entries, {{deployment, member}} each, taken off their queues
local function take_best(n)
  local out = {{}}
  if #deps == 1 then
    local popped = redis.call('ZPOPMIN', k_queue(deps[1]), n)
    for i = 1, #popped, 2 do out[#out + 1] = {{deps[1], popped[i]}} end
    return out
  end
  local best_dep, best_member, best_score = nil, nil, nil
  for _, dep in ipairs(deps) do
    local top = redis.call('ZRANGE', k_queue(dep), 0, 0, 'WITHSCORES')
    if top[1] then
      local score = tonumber(top[2])
      if best_dep == nil or score < best_score or (score == best_score and top[1] < best_member) then
        best_dep, best_member, best_score = dep, top[1], score
      end
    end
  end
  if best_dep ~= nil then
    redis.call('ZREM', k_queue(best_dep), best_member)
    out[1] = {{best_dep, best_member}}
  end
  return out
end

local claimed, skipped = {{}}, {{}}
local leases, running, tokens = {{}}, {{}}, {{}}
local budget = max_jobs + 100
while #claimed < max_jobs and budget > 0 do
  local entries = take_best(math.min(max_jobs - #claimed, budget))
  if #entries == 0 then break end
  budget = budget - #entries
  for _, entry in ipairs(entries) do
    local dep, member = entry[1], entry[2]
    local id = string.sub(member, {MEMBER_ID_OFFSET + 1})
    local h = nil
    if string.match(member, '^%d+:.') then
      h = redis.call('HMGET', k_job(id), 'state', 'spec', 'deadline', 'tokens', 'dep', 'member', 'attempt')
    end
    if h == nil or not h[1] then
      skipped[#skipped + 1] = {{member, 'no job record (foreign entry, or the job expired)'}}
    elseif h[1] ~= 'queued' or h[6] ~= member or h[5] ~= dep then
      skipped[#skipped + 1] = {{member, 'job is ' .. tostring(h[1]) .. ', not queued here'}}
    elseif tonumber(h[3]) and tonumber(h[3]) > 0 and tonumber(h[3]) < now then
      end_job(id, 'expired', ttl_s)
      skipped[#skipped + 1] = {{id, 'its client stopped waiting (deadline passed)'}}
    else
      local attempt = (tonumber(h[7]) or 0) + 1
      redis.call('HSET', k_job(id), 'state', 'running', 'owner', ARGV[1], 'attempt', attempt)
      leases[#leases + 1] = now + lease_ms
      leases[#leases + 1] = id
      if running[dep] == nil then running[dep], tokens[dep] = {{}}, 0 end
      running[dep][#running[dep] + 1] = id
      tokens[dep] = tokens[dep] + (tonumber(h[4]) or 0)
      local log = {{}}
      if attempt > 1 then log = redis.call('LRANGE', k_log(id), 0, -1) end
      claimed[#claimed + 1] = {{id, attempt, h[2], log}}
    end
  end
end
call_chunked('ZADD', k_leases(), leases, 1)
for dep, ids in pairs(running) do
  call_chunked('SADD', k_running(dep), ids, 1)
  if tokens[dep] ~= 0 then redis.call('INCRBY', k_tokens(dep), tokens[dep]) end
end
return {{claimed, skipped}}
"""

# ARGV: job_id, attempt, expected log length, lease (ms), is terminal ('1'/'0'), result TTL (s), event JSON...
# Returns {status, log length}: status ok | cancelled | done (a terminal event ended the job) | lost | conflict.
_PUBLISH = """
local id = ARGV[1]
local jk = k_job(id)
local h = redis.call('HMGET', jk, 'state', 'attempt', 'reply', 'cancel', 'dep', 'tokens')
if h[1] ~= 'running' or h[2] ~= ARGV[2] then return {'lost', 0} end
local lk = k_log(id)
local n = redis.call('LLEN', lk)
local expected, count = tonumber(ARGV[3]), #ARGV - 6
if n == expected + count then return {'ok', n} end
if n ~= expected then return {'conflict', n} end
call_chunked('RPUSH', lk, ARGV, 7)
if h[3] and h[3] ~= '' then
  local inbox, entries, head = k_inbox(h[3]), {}, '[' .. cjson.encode(id) .. ','
  for i = 7, #ARGV do entries[#entries + 1] = head .. (n + i - 7) .. ',' .. ARGV[i] .. ']' end
  if call_chunked('RPUSH', inbox, entries, 1) > 100000 then redis.call('LTRIM', inbox, -100000, -1) end
end
if ARGV[5] == '1' then
  leave_running(id, h[5], h[6])
  end_job(id, 'done', tonumber(ARGV[6]))
  return {'done', n + count}
end
if n == 0 then
  local ttl_s = redis.call('TTL', jk)
  if ttl_s > 0 then redis.call('EXPIRE', lk, ttl_s) end
end
redis.call('ZADD', k_leases(), 'XX', now_ms() + tonumber(ARGV[4]), id)
if h[4] == '1' then return {'cancelled', n + count} end
return {'ok', n + count}
"""

# ARGV: job_id, attempt, result TTL (s). Returns 1 if this attempt still held the job.
_ACK = """
local id = ARGV[1]
local h = redis.call('HMGET', k_job(id), 'state', 'attempt', 'dep', 'tokens')
if h[1] ~= 'running' or h[2] ~= ARGV[2] then return 0 end
leave_running(id, h[3], h[4])
end_job(id, 'done', tonumber(ARGV[3]))
return 1
"""

# ARGV: job_id, attempt, result TTL (s). Returns 1 if the job went back to its queue.
_RELEASE = """
local h = redis.call('HMGET', k_job(ARGV[1]), 'state', 'attempt')
if h[1] ~= 'running' or h[2] ~= ARGV[2] then return 0 end
return requeue(ARGV[1], tonumber(ARGV[3]))
"""

# ARGV: job_id, result TTL (s). Returns what happened: dropped | signalled | missing | <final state>.
_CANCEL = """
local id = ARGV[1]
local h = redis.call('HMGET', k_job(id), 'state', 'dep', 'member')
if not h[1] then return 'missing' end
if h[1] == 'queued' then
  redis.call('ZREM', k_queue(h[2]), h[3])
  end_job(id, 'cancelled', tonumber(ARGV[2]))
  return 'dropped'
end
if h[1] == 'running' then
  redis.call('HSET', k_job(id), 'cancel', '1')
  return 'signalled'
end
return h[1]
"""

# ARGV: lease (ms), worker TTL (ms), number of registrations, then per registration: worker id,
#       deployment, info JSON; then job_id, attempt pairs. Returns one status per job: ok | cancelled | lost.
_HEARTBEAT = """
local now = now_ms()
local lease_ms, worker_ttl_ms, num_regs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local i = 4
for _ = 1, num_regs do
  redis.call('ZADD', k_workers(ARGV[i + 1]), now, ARGV[i])
  redis.call('SET', k_worker(ARGV[i]), ARGV[i + 2], 'PX', worker_ttl_ms * 3)
  i = i + 3
end
local out = {}
while i < #ARGV do
  local h = redis.call('HMGET', k_job(ARGV[i]), 'state', 'attempt', 'cancel')
  if h[1] == 'running' and h[2] == ARGV[i + 1] then
    redis.call('ZADD', k_leases(), 'XX', now + lease_ms, ARGV[i])
    if h[3] == '1' then out[#out + 1] = 'cancelled' else out[#out + 1] = 'ok' end
  else
    out[#out + 1] = 'lost'
  end
  i = i + 2
end
return out
"""

# ARGV: worker id, deployments... (the worker is gone from the load view at once)
_UNREGISTER = """
for i = 2, #ARGV do redis.call('ZREM', k_workers(ARGV[i]), ARGV[1]) end
redis.call('DEL', k_worker(ARGV[1]))
return 1
"""

# ARGV: worker TTL (ms), deployments... Returns per deployment {depth, in flight, in-flight tokens, workers}.
_LOAD = """
local now = now_ms()
local out = {}
for i = 2, #ARGV do
  local dep = ARGV[i]
  redis.call('ZREMRANGEBYSCORE', k_workers(dep), '-inf', now - tonumber(ARGV[1]))
  out[#out + 1] = {redis.call('ZCARD', k_queue(dep)), redis.call('SCARD', k_running(dep)),
                   tonumber(redis.call('GET', k_tokens(dep)) or 0), redis.call('ZCARD', k_workers(dep))}
end
return out
"""

_SCRIPTS = {"submit": _SUBMIT, "claim": _CLAIM, "publish": _PUBLISH, "ack": _ACK, "release": _RELEASE,
            "cancel": _CANCEL, "heartbeat": _HEARTBEAT, "unregister": _UNREGISTER, "load": _LOAD}


def script_sources(keys: RedisKeys) -> dict[str, str]:
    """name -> the full Lua source for this prefix (key-name functions, helpers, then the script)."""
    prelude = keys.lua_prelude() + _HELPERS
    return {name: prelude + body for name, body in _SCRIPTS.items()}
