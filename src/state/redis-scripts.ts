/**
 * The Lua scripts of the Redis state store. Each runs atomically in Redis, so
 * two memgate instances can never interleave inside one change.
 *
 * A tenant's state is one hash:
 *
 *   <keyPrefix>tenant:<name>   generation  "T3m9QxA0"
 *                              rotatedAtMs "1735689600000"
 *                              pendingAtMs ""              (or a wall-clock ms: flush_all <delay>)
 *                              version     "7"             (bumped by every change; instances drop stale news)
 *
 * Every change is published on `<keyPrefix>rotations` as
 * `version|tenant|generation|rotatedAtMs|pendingAtMs` (a tenant name has no `|`),
 * so every instance switches as soon as the message arrives.
 *
 * A missing hash is created with the fresh generation the caller sends
 * (ARGV[1]); being inside the script, that is a SET NX: two instances starting
 * together agree on one generation. Nothing ever writes an older generation
 * back. Numbers travel as decimal strings and are stored as sent, so the
 * script never reformats a timestamp.
 *
 * Budgets (leases.ts): `<keyPrefix>budget:<tenant>:<ops|bytes>` is a token
 * bucket {level, ts} that instances lease slices from. The caller's wall
 * clock is the time base (ARGV); a clock behind the bucket's never rewinds it.
 */

/** Common head: make sure KEYS[1] exists (ARGV[1] fresh generation, ARGV[3] now), then read it. */
const ENSURE = `
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'generation', ARGV[1], 'rotatedAtMs', ARGV[3], 'pendingAtMs', '', 'version', '1')
end
local s = redis.call('HMGET', key, 'generation', 'rotatedAtMs', 'pendingAtMs', 'version')
local function rotate()
  local g = ARGV[1]
  if g == s[1] then g = ARGV[2] end
  local v = redis.call('HINCRBY', key, 'version', 1)
  redis.call('HSET', key, 'generation', g, 'rotatedAtMs', ARGV[3], 'pendingAtMs', '')
  s = {g, ARGV[3], '', tostring(v)}
end
local function publish()
  redis.call('PUBLISH', ARGV[4], s[4] .. '|' .. ARGV[5] .. '|' .. s[1] .. '|' .. s[2] .. '|' .. s[3])
end
`;

/**
 * Arguments shared by the tenant scripts:
 *   KEYS[1] the tenant's hash
 *   ARGV[1], ARGV[2] two fresh generations (the second in case the first equals the current one)
 *   ARGV[3] now (wall clock, ms)   ARGV[4] the channel   ARGV[5] the tenant name
 * Each returns { generation, rotatedAtMs, pendingAtMs, version, rotated (0/1) }.
 */
export const TENANT_SCRIPTS = {
  /** open/addTenants: create when missing; apply an overdue pending rotation. */
  memgateEnsure: `${ENSURE}
local rotated = 0
if s[3] ~= '' and tonumber(s[3]) <= tonumber(ARGV[3]) then
  rotate()
  publish()
  rotated = 1
end
return {s[1], s[2], s[3], s[4], rotated}
`,
  /** flush_all, admin rotate: a fresh generation now, any pending rotation cleared. */
  memgateRotate: `${ENSURE}
rotate()
publish()
return {s[1], s[2], s[3], s[4], 1}
`,
  /** flush_all <delay>: ARGV[6] is the due time (replaces a pending one, as memcached does). */
  memgateSchedule: `${ENSURE}
local v = redis.call('HINCRBY', key, 'version', 1)
redis.call('HSET', key, 'pendingAtMs', ARGV[6])
s = {s[1], s[2], ARGV[6], tostring(v)}
publish()
return {s[1], s[2], s[3], s[4], 0}
`,
  /**
   * A pending rotation is due: rotate only if the pending time is still ARGV[6]
   * and has come, so that of all the instances whose timers fire, exactly one rotates.
   */
  memgateFireDue: `${ENSURE}
local rotated = 0
if s[3] == ARGV[6] and s[3] ~= '' and tonumber(s[3]) <= tonumber(ARGV[3]) then
  rotate()
  publish()
  rotated = 1
end
return {s[1], s[2], s[3], s[4], rotated}
`,
} as const;

/** Read-only: KEYS are tenant hashes; returns, per key, { generation, rotatedAtMs, pendingAtMs, version } or false. */
export const READ_TENANTS = `
local out = {}
for i, key in ipairs(KEYS) do
  local s = redis.call('HMGET', key, 'generation', 'rotatedAtMs', 'pendingAtMs', 'version')
  if s[1] then out[i] = s else out[i] = false end
end
return out
`;

/**
 * Token bucket refill shared by the budget scripts. KEYS[1] the bucket;
 * ARGV[1] tokens, ARGV[2] rate per second, ARGV[3] burst, ARGV[4] now (ms).
 * A missing bucket is full. Keys expire once a full refill has passed
 * (a bucket idle that long would be full anyway).
 */
const BUCKET = `
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(b[1])
local ts = tonumber(b[2])
if level == nil or ts == nil then
  level = burst
  ts = now
end
if now > ts then
  level = level + (now - ts) * rate / 1000
  ts = now
end
if level > burst then level = burst end
local function save()
  redis.call('HSET', KEYS[1], 'level', tostring(level), 'ts', tostring(ts))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
end
`;

export const BUDGET_SCRIPTS = {
  /**
   * Lease: ARGV[5] tokens admitted on credit are charged first (the level may
   * go below 0, down to −burst); returns { granted, waitMs } — waitMs is how
   * long until ARGV[1] (at most the burst) is there.
   */
  memgateLease: `${BUCKET}
level = level - tonumber(ARGV[5])
if level < -burst then level = -burst end
local want = tonumber(ARGV[1])
local granted = math.floor(level)
if granted > want then granted = want end
if granted < 0 then granted = 0 end
level = level - granted
save()
local waitMs = 0
if granted < want then
  local need = want
  if need > burst then need = burst end
  waitMs = math.ceil((need - level) * 1000 / rate)
  if waitMs < 1 then waitMs = 1 end
end
return {granted, waitMs}
`,
  /** Give back: unused tokens return to the bucket (never above the burst). */
  memgateGiveBack: `${BUCKET}
level = level + tonumber(ARGV[1])
if level > burst then level = burst end
save()
return 1
`,
  /**
   * Heartbeat: KEYS[1] a sorted set of instance ids scored by expiry;
   * ARGV[1] this instance, ARGV[2] now, ARGV[3] ttl ms (0 removes it). Returns the live count.
   */
  memgateHeartbeat: `
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[3]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 10)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
`,
} as const;
