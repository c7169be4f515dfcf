"""The stage folders of ``pipeline/`` form layers: a lower stage never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
# Shared vocabulary first, the composition root and its callers last.
LAYERS = [
    {"settings", "errors", "months", "money", "labels", "resident_id"},
    {"store", "synth"},
    {"policy"},
    {"ingest"},
    {"quality"},
    {"warnings"},
    {"assistance"},
    {"reports"},
    {"delivery"},
    {"run"},
    {"cli", "demo"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pipeline" else None


def test_every_stage_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    units -= {"__init__", "__pycache__", "__main__"}
    assert units <= set(RANK), sorted(units - set(RANK))


def test_no_lower_stage_imports_a_higher_one() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        own = rel[0].removesuffix(".py")
        if own not in RANK:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                unit = _unit(name)
                if unit in RANK and RANK[unit] > RANK[own]:
                    wrong.append(f"{'/'.join(rel)} imports {name}")
    assert not wrong, wrong
