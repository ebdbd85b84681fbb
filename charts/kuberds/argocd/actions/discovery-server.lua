-- Actions on a DBInstance or DBCluster: switch the primary over, take a snapshot, pause or
-- resume kuberds' automation. Each is offered only where it can do something.
local actions = {}
local paused = obj.spec ~= nil and obj.spec.automationPaused == true
local members = 0
if obj.status ~= nil and obj.status.members ~= nil then
  members = #obj.status.members
end
actions["switchover"] = {["disabled"] = paused or members < 2, ["iconClass"] = "fa fa-fw fa-exchange-alt"}
actions["snapshot"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-camera"}
actions["pause"] = {["disabled"] = paused, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
