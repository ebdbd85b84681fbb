"""MySQL: accepted by the API, refused with EngineNotSupported. Debian bookworm ships no
Oracle MySQL server, so there is nothing to build an image or a test from (see DESIGN.md);
MariaDB is the MySQL-family engine kuberds runs."""

from kuberds.engines.base import EngineInfo

INFO = EngineInfo(
    name="mysql",
    family="database",
    versions=("8.0",),
    default_port=3306,
    reserved_usernames=("root", "mysql"),
    max_username_length=32,
    reserved_databases=("mysql", "information_schema", "performance_schema", "sys"),
    managed_parameters=("log_bin", "gtid_mode", "server_id", "bind-address", "datadir", "port"),
    not_offered="Debian bookworm ships no Oracle MySQL server to build and test it from; use engine: mariadb "
    "(MariaDB 10.11, MySQL-compatible)",
)
