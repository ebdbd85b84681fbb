"""MariaDB: in the API; its data plane (agent, image) is still to come."""

from kuberds.engines.base import EngineInfo

INFO = EngineInfo(
    name="mariadb",
    family="database",
    versions=("10.11",),
    default_port=3306,
    reserved_usernames=("root", "mysql"),
    max_username_length=32,
    reserved_databases=("mysql", "information_schema", "performance_schema", "sys"),
    managed_parameters=("log_bin", "gtid_mode", "server_id", "bind-address", "datadir", "port"),
)
