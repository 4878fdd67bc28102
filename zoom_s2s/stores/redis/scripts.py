"""The Lua scripts of :class:`~zoom_s2s.stores.redis.RedisTokenStore`.

Each touches one hash tag (Cluster-safe) and checks its arguments before its
first write: ``docs/backends.rst`` ("Redis", "The scripts").
"""

__all__ = [
    "ACQUIRE_SCRIPT",
    "COMMANDS",
    "DELETE_SCRIPT",
    "MAX_TTL_MS",
    "READ_SCRIPT",
    "RELEASE_SCRIPT",
    "WRITE_FAILURE_SCRIPT",
    "WRITE_SCRIPT",
]

MAX_TTL_MS = 86_400_000
"""Longest TTL any script sets, ms (one day): a longer one is refused before any write."""

# Commands called inside the scripts (PUBLISH through pcall: optional).
COMMANDS = ("TYPE", "GET", "SET", "INCR", "DEL", "HGET", "HSET", "PEXPIRE", "PTTL", "PUBLISH")

# A Lua function the reading scripts share: the token hash and the failure
# record of one key, each with its PTTL, read in one atomic step so that both
# are measured by Redis's clock alone. Returns {data, pttl, failure, failure_pttl}:
# data (failure) is nil if absent; a pttl is PTTL's answer (-1: no TTL, -2:
# absent), or -3 if the key exists with the wrong type.
_STATE = """
local function state(token_key, failure_key)
  local found = {false, -2, false, -2}
  local kind = redis.call('TYPE', token_key)['ok']
  if kind == 'hash' then
    found[1], found[2] = redis.call('HGET', token_key, 'data'), redis.call('PTTL', token_key)
  elseif kind ~= 'none' then found[2] = -3 end
  kind = redis.call('TYPE', failure_key)['ok']
  if kind == 'string' then
    found[3], found[4] = redis.call('GET', failure_key), redis.call('PTTL', failure_key)
  elseif kind ~= 'none' then found[4] = -3 end
  return found
end
"""

# KEYS[1]: token hash, KEYS[2]: failure record. ARGV: none.
# Returns the state (see _STATE).
READ_SCRIPT = _STATE + "return state(KEYS[1], KEYS[2])\n"

# KEYS[1]: lock, KEYS[2]: generation counter, KEYS[3]: fence, KEYS[4]: token
# hash, KEYS[5]: failure record.
# ARGV[1]: owner (random hex), ARGV[2]: lock TTL in ms (1 .. MAX_TTL_MS).
# Returns {generation, data, pttl, failure, failure_pttl}: the lease's
# generation (>= 1), above every generation handed out or written before (even
# if the counter was lost while the fence survived), or 0 if another owner
# holds the lock; then the state as read with the lock taken (see _STATE).
# The lock's value is "<owner>:<generation>". If the lock already holds
# ARGV[1] (the client retried a call whose reply was lost, but whose SET went
# through), the generation taken then is returned.
ACQUIRE_SCRIPT = _STATE + """
local ttl = tonumber(ARGV[2])
if not ttl or ttl ~= math.floor(ttl) or ttl < 1 or ttl > 86400000 then
  return redis.error_reply('ERR zoom_s2s: lock TTL must be 1 to 86400000 ms, got ' .. ARGV[2])
end
local n = 0
local held = redis.call('GET', KEYS[1])
if held then
  local mine = ARGV[1] .. ':'
  if string.sub(held, 1, #mine) == mine then
    n = tonumber(string.sub(held, #mine + 1)) or 0
  end
else
  n = redis.call('INCR', KEYS[2])
  local fence = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
  if n <= fence then
    n = fence + 1
    redis.call('SET', KEYS[2], n)
  end
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. n, 'PX', ttl)
end
local found = state(KEYS[4], KEYS[5])
return {n, found[1], found[2], found[3], found[4]}
"""

# KEYS[1]: token hash, KEYS[2]: fence, KEYS[3]: failure record, KEYS[4]: lock.
# ARGV[1]: generation, ARGV[2]: record, ARGV[3]: fingerprint, ARGV[4]: TTL in
# ms, 0 .. MAX_TTL_MS (0: the token expired on its way here: store none),
# ARGV[5]: channel, ARGV[6]: the lease's lock value "<owner>:<generation>" to
# release after writing, or "" to keep the lock.
# Returns 1 if written (the failure record is forgotten, the lock released if
# asked and still the lease's, and waiters are woken), 0 if ARGV[1] is below
# the fence (nothing changed; the lock is then a successor's). Arguments out
# of range are an error reply before anything is written; DEL, the last
# write, cannot fail.
WRITE_SCRIPT = """
local generation, ttl = tonumber(ARGV[1]), tonumber(ARGV[4])
if not generation or generation < 1 or generation ~= math.floor(generation) then
  return redis.error_reply('ERR zoom_s2s: generation must be a positive integer, got ' .. ARGV[1])
end
if not ttl or ttl ~= math.floor(ttl) or ttl < 0 or ttl > 86400000 then
  return redis.error_reply('ERR zoom_s2s: token TTL must be 0 to 86400000 ms, got ' .. ARGV[4])
end
if generation < (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[3])
if ttl > 0 then
  redis.call('HSET', KEYS[1], 'fp', ARGV[3], 'gen', ARGV[1], 'data', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if ARGV[6] ~= '' and redis.call('GET', KEYS[4]) == ARGV[6] then
  redis.call('DEL', KEYS[4])
end
redis.pcall('PUBLISH', ARGV[5], 'written')
return 1
"""

# KEYS[1]: failure record, KEYS[2]: fence.
# ARGV[1]: the writer's generation, ARGV[2]: FailureRecord JSON, ARGV[3]: how
# long to keep it, ms (1 .. MAX_TTL_MS).
# Returns 1 if stored, 0 if a token of a later generation was already written
# (a newer fetch succeeded, so this failure is stale: nothing changed).
WRITE_FAILURE_SCRIPT = """
local generation, ttl = tonumber(ARGV[1]), tonumber(ARGV[3])
if not generation or not ttl or ttl ~= math.floor(ttl) or ttl < 1 or ttl > 86400000 then
  return redis.error_reply('ERR zoom_s2s: failure TTL must be 1 to 86400000 ms, got ' .. ARGV[3])
end
if generation < (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
return 1
"""

# KEYS[1]: token hash. ARGV[1]: fingerprint, ARGV[2]: channel.
# Returns 1 if the token had that fingerprint and was deleted, else 0.
DELETE_SCRIPT = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], 'deleted')
return 1
"""

# KEYS[1]: lock. ARGV[1]: the lease's lock value "<owner>:<generation>", ARGV[2]: channel.
# Returns 1 if the lease held the lock and it was released, 0 if expired or taken over.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], 'released')
return 1
"""
