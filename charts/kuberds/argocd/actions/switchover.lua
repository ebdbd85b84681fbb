-- Asks kuberds for a planned switchover to the member it finds best (the synchronous standby
-- when there is one): the annotation requests.kuberds.io/switchover-to, which the operator carries out,
-- answers with an Event, and removes. Not a spec change, so the object stays Synced.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["requests.kuberds.io/switchover-to"] = "any"
return obj
