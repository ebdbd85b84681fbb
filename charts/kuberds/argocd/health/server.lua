-- Argo CD health of a kuberds server: DBInstance, DBCluster, ReadReplica, CacheCluster.
-- Read from the conditions and observedGeneration kuberds writes, never from status.phase:
--   Suspended    Paused=True (spec.automationPaused: kuberds changes nothing)
--   Degraded     Reconciled=False (a spec kuberds refuses, a failing pass), StorageFull=True,
--                SourceUnavailable=True (a replica's source is gone), BackupHealthy=False,
--                EndpointsValid=False (a DBCluster endpoint names no member), Replicating=False
--                because a replica stopped streaming (NotStreaming)
--   Healthy      Ready=True for the object's current generation
--   Progressing  everything else: being created, not yet seen, a replica being seeded or
--                promoted, a rollout or a switchover (Available, not Ready), a failover (no
--                leader for a moment)
-- (An object being deleted never reaches this check: Argo CD says "Pending deletion" itself.)
local hs = {}

local function said(c)
  if c.message ~= nil and c.message ~= "" then
    return c.type .. " (" .. (c.reason or "") .. "): " .. c.message
  end
  return c.type .. " (" .. (c.reason or "") .. ")"
end

local function answer(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  return answer("Progressing", "waiting for kuberds to act on this object")
end
local generation = obj.metadata.generation or 0
if status.observedGeneration < generation then
  return answer("Progressing", "kuberds has not yet acted on generation " .. generation
    .. " (status is of " .. status.observedGeneration .. ")")
end

local conditions = {}
for _, c in ipairs(status.conditions or {}) do
  conditions[c.type] = c
end
local function is(kind, value)
  return conditions[kind] ~= nil and conditions[kind].status == value
end

if is("Paused", "True") then
  return answer("Suspended", said(conditions["Paused"]))
end
for _, problem in ipairs({ {"Reconciled", "False"}, {"StorageFull", "True"}, {"SourceUnavailable", "True"},
                           {"BackupHealthy", "False"}, {"EndpointsValid", "False"} }) do
  if is(problem[1], problem[2]) then
    return answer("Degraded", said(conditions[problem[1]]))
  end
end
-- A read replica that stopped streaming serves ever older reads; one being seeded or
-- promoted is on its way.
local replicating = conditions["Replicating"]
if replicating ~= nil and replicating.status == "False" then
  if replicating.reason == "NotStreaming" then
    return answer("Degraded", said(replicating))
  elseif replicating.reason == "Seeding" or replicating.reason == "Promoting" then
    return answer("Progressing", said(replicating))
  end
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  if ready.observedGeneration ~= nil and ready.observedGeneration < generation then
    return answer("Progressing", "Ready is of generation " .. ready.observedGeneration .. ", not " .. generation)
  end
  return answer("Healthy", ready.message or "ready")
end
if ready ~= nil then
  return answer("Progressing", said(ready))
end
if conditions["Available"] ~= nil then
  return answer("Progressing", said(conditions["Available"]))
end
return answer("Progressing", "waiting for kuberds to say whether the server is ready")
