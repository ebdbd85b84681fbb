-- Actions on a ReadReplica: promote it to a standalone server (once: it cannot be undone),
-- pause or resume kuberds' automation.
local actions = {}
local spec = obj.spec or {}
local paused = spec.automationPaused == true
actions["promote"] = {["disabled"] = spec.promote == true, ["iconClass"] = "fa fa-fw fa-level-up-alt"}
actions["pause"] = {["disabled"] = paused, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
