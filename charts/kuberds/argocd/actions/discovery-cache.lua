-- Actions on a CacheCluster: a snapshot (Redis: Memcached keeps no data to snapshot), pause or
-- resume kuberds' automation.
local actions = {}
local spec = obj.spec or {}
local paused = spec.automationPaused == true
actions["snapshot"] = {["disabled"] = spec.engine ~= "redis", ["iconClass"] = "fa fa-fw fa-camera"}
actions["pause"] = {["disabled"] = paused, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
