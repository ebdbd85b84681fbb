"""Engine parameters as an allow-list with types and ranges (PostgreSQL 15's, from pg_settings)."""

from __future__ import annotations

import pytest

from kuberds.engines.parameters import Parameter
from kuberds.engines.postgres import PARAMETERS, POSTGRES


@pytest.mark.parametrize(
    ("name", "value"),
    [("work_mem", "16MB"), ("work_mem", "65536"), ("WORK_MEM", "1GB"), ("shared_buffers", "128MB"),
     ("max_connections", "500"), ("statement_timeout", "30s"), ("statement_timeout", "0"),
     ("log_min_duration_statement", "-1"), ("checkpoint_completion_target", "0.9"), ("random_page_cost", "1.1"),
     ("autovacuum", "off"), ("autovacuum", "TRUE"), ("huge_pages", "try"), ("TimeZone", "Europe/Paris"),
     ("default_transaction_isolation", "repeatable read"), ("vacuum_cost_delay", "2ms"),
     ("ssl_min_protocol_version", "TLSv1.3"), ("autovacuum_naptime", "1min"), ("wal_buffers", "-1")],
)  # fmt: skip
def test_values_postgres_takes_are_taken(name: str, value: str) -> None:
    assert POSTGRES.parameter_problems({name: value}) == []


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [("work_mem", "lots", "'lots' is not a number with B, kB, MB, GB, TB (kB when none)"),
     ("work_mem", "1GBs", "is not a number"), ("work_mem", "8", "8 is below the minimum, 64 kB"),
     ("max_connections", "1.5", "not a whole number"), ("max_connections", "300000", "above the maximum, 262143"),
     ("statement_timeout", "5MB", "is not a number with us, ms, s, min, h, d"),
     ("huge_pages", "maybe", "'maybe' is not one of off, on, try"), ("autovacuum", "perhaps", "is not on or off"),
     ("search_path", "public\nSELECT 1", "control characters"),
     ("ssl_min_protocol_version", "TLSv1", "is not one of TLSv1.2, TLSv1.3"),
     # Not on the list: commands, libraries, files, durability, what kuberds manages.
     ("archive_command", "/bin/true", "not a postgres parameter users may set"),
     ("Archive_Command", "/bin/true", "not a postgres parameter users may set"),
     ("archive_cleanup_command", "x", "not a postgres"), ("ssl_passphrase_command", "x", "not a postgres"),
     ("shared_preload_libraries", "x", "not a postgres"), ("dynamic_library_path", "/tmp", "not a postgres"),
     ("log_directory", "/tmp", "not a postgres"), ("unix_socket_directories", "/tmp", "not a postgres"),
     ("fsync", "off", "not a postgres"), ("restore_command", "x", "not a postgres"),
     ("recovery_target_time", "x", "not a postgres"), ("primary_conninfo", "x", "not a postgres"),
     ("work_mem\narchive_command", "x", "not a postgres")],
)  # fmt: skip
def test_values_and_names_postgres_would_refuse_are_named(name: str, value: str, words: str) -> None:
    problems = POSTGRES.parameter_problems({name: value})
    assert len(problems) == 1 and problems[0].startswith(f"parameters.{name}") and words in problems[0], problems


def test_the_allow_list_is_postgres_15s_own_and_keeps_out_what_kuberds_manages() -> None:
    assert len(PARAMETERS) > 200 and {"work_mem", "shared_buffers", "max_connections", "log_statement"} <= set(
        PARAMETERS
    )
    assert not set(PARAMETERS) & set(POSTGRES.info.managed_parameters)
    assert PARAMETERS["shared_buffers"] == Parameter("shared_buffers", "integer", "8kB", 16, 1073741823)


def test_a_base_unit_of_8kb_blocks_converts() -> None:
    blocks = PARAMETERS["shared_buffers"]  # ranges are in 8 kB pages
    assert blocks.problem("128kB") is None and "below the minimum" in blocks.problem("64kB")
