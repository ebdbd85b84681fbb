"""The shape the code keeps: the operator and the agent meet only in the contract, builders do
no I/O, and no module grows past what one concern needs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "kuberds"
# Importable by both sides: the contract, and helpers that know neither side.
NEUTRAL = {"kuberds", "kuberds.contract", "kuberds.codec", "kuberds.quantity", "kuberds.restclient"}
POD_SIDE = {"kuberds.agent"}
OPERATOR_SIDE = {
    "kuberds.api", "kuberds.builders", "kuberds.handlers", "kuberds.operations", "kuberds.engines", "kuberds.kube",
    "kuberds.triggers", "kuberds.indexes", "kuberds.config", "kuberds.operator_main", "kuberds.metrics",
}  # fmt: skip
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "kuberds" or n.startswith("kuberds.")}


def side(name: str) -> str:
    def under(roots: set[str]) -> bool:
        return any(name == r or name.startswith(r + ".") for r in roots)

    if under(POD_SIDE):
        return "pod"
    if under(OPERATOR_SIDE):
        return "operator"
    return "neutral"


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_the_two_sides_meet_only_in_the_contract(path: Path) -> None:
    name = module_name(path)
    own = side(name)
    # The contract and the helpers import neither side; the command line starts either one.
    allowed = {"pod", "operator", "neutral"} if name == "kuberds.cli" else {own, "neutral"}
    crossing = sorted(n for n in imported(path) if side(n) not in allowed)
    assert not crossing, f"{module_name(path)} ({own} side) imports {crossing}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "builders").glob("*.py")), ids=lambda p: p.name)
def test_builders_do_no_io(path: Path) -> None:
    forbidden = {"kuberds.kube", "kuberds.restclient", "kopf", "kubernetes", "urllib", "subprocess", "socket"}
    tree = ast.parse(path.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in modules if m.split(".")[0] in forbidden or m in forbidden}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_outgrows_one_concern(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES
