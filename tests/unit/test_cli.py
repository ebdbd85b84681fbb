from __future__ import annotations

import pytest

from kuberds.cli import build_parser, main


def test_help_names_both_roles(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert "operator" in out and "agent" in out


def test_agent_of_an_engine_without_one_yet_says_so(capsys) -> None:
    assert main(["agent", "mysql"]) == 2
    assert "not implemented yet" in capsys.readouterr().err


def test_agent_refuses_an_unknown_engine(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["agent", "oracle"])
    assert exit.value.code == 2
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


def test_operator_watches_all_namespaces_unless_told() -> None:
    assert build_parser().parse_args(["operator"]).namespace == []
    args = build_parser().parse_args(["operator", "--namespace", "a", "--namespace", "b"])
    assert args.namespace == ["a", "b"]
