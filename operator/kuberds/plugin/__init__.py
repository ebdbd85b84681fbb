"""`kubectl kuberds`: a kubectl plugin for kuberds' servers (DBInstance, DBCluster, ReadReplica,
CacheCluster), in the same Python package as the operator and the agent.

    cli        the arguments, and one function per command
    client     every API call, through the official `kubernetes` client and the user's kubeconfig
    kinds      the kinds, the labels kuberds puts on a server's objects, what a server's object says
    status     the status screen (pure: an object, its pods and events in, text out)
    connect    a port-forward to a member and the engine's own shell client
    logs       every container's log of a server's pods, merged in time order
    report     a support bundle (tar.gz); redact keeps secret values out of it (pure)
    requests   switchover, promote, pause/resume, snapshot and restore: what they write
    restore    the objects a restore and a snapshot create (pure)
    text       columns, times and durations (pure); errors: PluginError, the one failure

The plugin reads the API as any client does and imports only the package's neutral modules
(kuberds, kuberds.contract, kuberds.quantity), never the operator's or the agent's: the few
names it shares with the operator are spelled in kinds.py, and a unit test pins them.
"""
