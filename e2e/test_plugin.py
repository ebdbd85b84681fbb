"""kubectl kuberds on real database pods: `connect` runs psql on this machine through a
`kubectl port-forward` to the primary, over TLS verified against the server's CA, the password
in psql's environment; `logs` merges the pod's log, where the agent's lines and PostgreSQL's
own meet (one container: the agent runs PostgreSQL, under Patroni, as its child).

The plugin runs in this process through its main(), with the suite's kubeconfig and kubectl.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest

from e2e.manifests import dbinstance
from e2e.support import E2E
from kuberds.plugin import cli
from kuberds.plugin.text import parse_precise

NAME = "plugged"
# PostgreSQL's own lines: log_line_prefix '%m [%p] ' (its default), then the severity.
POSTGRES_LINE = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{3} \S+ \[\d+\] (LOG|WARNING|ERROR|FATAL|PANIC|INFO|NOTICE):  ")


@pytest.fixture(scope="module")
def server(e2e: E2E) -> Iterator[str]:
    """A small Multi-AZ PostgreSQL server of this module's own (TLS on, as by default); gone
    afterwards, its volumes too, so the scenarios after it have the nodes to themselves."""
    e2e.apply(dbinstance(e2e.namespace, NAME, skipFinalSnapshot=True, multiAZ=True))
    e2e.wait_available(NAME, timeout=600)
    yield NAME
    e2e.kubectl("delete", "dbinstance", NAME, "-n", e2e.namespace, "--wait=true", "--timeout=180s", check=False,
                timeout=200)  # fmt: skip
    for ordinal in (0, 1):
        e2e.kubectl("delete", "pvc", f"data-{NAME}-{ordinal}", "-n", e2e.namespace, "--wait=false", check=False)


def plugin(e2e: E2E, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str):
    """`kubectl kuberds ARGS` against the suite's cluster: (exit status, stdout, stderr)."""
    monkeypatch.setenv("KUBECTL", e2e.cluster.kubectl_path)  # the port-forward's kubectl, of the cluster's version
    capsys.readouterr()
    code = cli.main(["--kubeconfig", str(e2e.cluster.kubeconfig), "-n", e2e.namespace, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_connect_runs_a_statement_on_the_primary_over_verified_tls(
    e2e: E2E, server: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed on this machine (Debian: postgresql-client)")
    primary = e2e.primary(server)
    code, out, err = plugin(e2e, capsys, monkeypatch, "connect", server, "--command", "select 1")
    assert code == 0, f"{out}\n{err}"
    assert "(1 row)" in out and any(line.strip() == "1" for line in out.splitlines()), out
    assert f"connecting to {primary} (port 5432) through 127.0.0.1:" in err

    statement = "select ssl, current_user, pg_is_in_recovery() from pg_stat_ssl where pid = pg_backend_pid()"
    code, out, err = plugin(e2e, capsys, monkeypatch, "connect", server, "--command", statement, "--", "-A", "-t")
    assert code == 0, err
    assert out.strip() == "t|dbadmin|f", "over TLS (verify-ca against the server's CA), as the master user, on the " \
                                         "primary"  # fmt: skip
    password = e2e.secret_value(f"{server}-master", "password")
    assert password not in out and password not in err

    code, out, err = plugin(e2e, capsys, monkeypatch, "connect", server, "--command", "select no_such_column")
    assert code != 0 and "no_such_column" in err, "psql's failure is the command's"


def test_logs_merge_the_agents_and_postgresqls_lines_in_time_order(
    e2e: E2E, server: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = e2e.pods(server)[f"{server}-0"]
    containers = {f"{server}-{i}/{c['name']}" for c in pod["spec"]["containers"] for i in (0, 1)}
    code, out, err = plugin(e2e, capsys, monkeypatch, "logs", server)
    assert code == 0, err
    lines = out.splitlines()
    assert lines, err
    seen = {line[1 : line.index("]")] for line in lines}
    assert seen == containers, "every container of the pod, each line prefixed with pod/container"
    assert containers == {f"{server}-0/postgres", f"{server}-1/postgres"}, "one container each: the agent and the " \
                                                                          "engine it runs"  # fmt: skip
    assert any(" kuberds.agent INFO: " in line for line in lines), "the agent's lines"
    assert any(POSTGRES_LINE.search(line) for line in lines), "PostgreSQL's own lines"
    stamps = [parse_precise(line.split()[1]) for line in lines]
    assert all(stamps), "every line has the kubelet's timestamp"
    assert stamps == sorted(stamps), "in time order"

    code, out, err = plugin(e2e, capsys, monkeypatch, "logs", server, "--tail", "5", "--since", "1h",
                            "--no-timestamps")  # fmt: skip
    assert code == 0, err
    short = out.splitlines()
    assert 0 < len(short) <= 10 and all(re.match(rf"\[{server}-[01]/postgres\] ", line) for line in short)


def test_switchover_on_request_moves_the_primary_and_the_request_goes(
    e2e: E2E, server: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.kube import wait_for

    def synchronous_standby() -> bool:
        return any(m.get("synchronous") for m in e2e.status(server).get("members", []))

    wait_for(synchronous_standby, timeout=120, interval=2, what="a synchronous standby reported")
    before = e2e.primary(server)
    code, out, err = plugin(e2e, capsys, monkeypatch, "switchover", server, "--wait", "--timeout", "120s")
    assert code == 0, f"{out}\n{err}"
    after = e2e.primary(server)
    assert after and after != before, out
    assert f"the primary is {after} now (was {before})" in out and "Switchover" in out, out
    assert "requests.kuberds.io/switchover-to" not in (
        e2e.get("dbinstance", server)["metadata"].get("annotations") or {}
    )

    # Asking for the member that leads already: said, and nothing moves.
    code, out, err = plugin(e2e, capsys, monkeypatch, "switchover", server, "--to", after)
    assert code == 1 and "is the primary" in err, (out, err)
