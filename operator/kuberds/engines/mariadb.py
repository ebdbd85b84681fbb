"""MariaDB: in the API; its data plane (agent, image) is still to come."""

from kuberds.engines.base import EngineInfo

INFO = EngineInfo(
    name="mariadb",
    family="database",
    versions=("10.11",),
    default_port=3306,
    reserved_usernames=("root", "mysql"),
    managed_parameters=("log_bin", "gtid_mode", "server_id", "bind-address", "datadir", "port"),
)
