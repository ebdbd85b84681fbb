-- Takes a manual DBSnapshot of this server now, named after it and the UTC time. The snapshot
-- has no owner: it outlives the server, as RDS's manual snapshots do.
local os = require("os") -- Argo CD loads a safe os library only on request
local sources = {DBInstance = "dbInstance", DBCluster = "dbCluster", CacheCluster = "cacheCluster"}
local name = obj.metadata.name .. "-" .. os.date("!%Y%m%d-%H%M%S")
local snapshot = {
  apiVersion = "kuberds.io/v1alpha1",
  kind = "DBSnapshot",
  metadata = {name = name, namespace = obj.metadata.namespace},
  spec = {source = {[sources[obj.kind]] = obj.metadata.name}},
}
return {{operation = "create", resource = snapshot}}
