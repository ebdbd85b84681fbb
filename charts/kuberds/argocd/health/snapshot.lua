-- Argo CD health of a kuberds DBSnapshot, from its conditions (never status.phase):
--   Healthy      Ready=True: the backup is taken and can be restored
--   Degraded     Ready=False because it failed, SourceFound=False (no such server), or
--                Reconciled=False
--   Progressing  everything else: waiting for the source's agent, being taken
-- (A snapshot being deleted never reaches this check: Argo CD says "Pending deletion" itself.)
local hs = {}
local status = obj.status or {}
local conditions = {}
for _, c in ipairs(status.conditions or {}) do
  conditions[c.type] = c
end
local ready, source = conditions["Ready"], conditions["SourceFound"]

if conditions["Reconciled"] ~= nil and conditions["Reconciled"].status == "False" then
  hs.status, hs.message = "Degraded", conditions["Reconciled"].message or "kuberds cannot act on it"
elseif source ~= nil and source.status == "False" then
  hs.status, hs.message = "Degraded", source.message or "the source server does not exist"
elseif ready ~= nil and ready.status == "True" then
  hs.status, hs.message = "Healthy", ready.message or "taken"
elseif ready ~= nil and ready.reason == "Failed" then
  hs.status, hs.message = "Degraded", ready.message or "the backup failed"
elseif ready ~= nil then
  hs.status, hs.message = "Progressing", ready.message or "being taken"
else
  hs.status, hs.message = "Progressing", "waiting for kuberds to act on this snapshot"
end
return hs
