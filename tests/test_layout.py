"""The package's layers: data flows one way, no module imports from a layer above its own.

Read from the source (every import statement, function-level ones included), so a shortcut that
reaches around a layer fails here before it becomes a cycle or a second copy of a chain.
"""

from __future__ import annotations

import ast
from pathlib import Path

import facerecon

ROOT = Path(facerecon.__file__).parent

#: Bottom to top; modules in one layer must not import each other's layer-mates either, unless
#: they are the same sub-package.
LAYERS: list[set[str]] = [
    {"atomic", "geometry", "assets", "config", "cpus"},
    {"render"},
    {"params"},
    {"facemodel"},
    {"forward"},
    {"imageio", "nets"},
    {"losses"},
    {"fitting", "synthesis"},
    {"multi", "data"},
    {"evaluation", "training"},
    {"export"},
    {"pipeline"},
    {"web", "scale"},  # below cli, which starts them (serve, reconstruct --ray); layer-mates may not import each other
    {"cli"},
]


def _unit(module: str) -> str:
    """'facerecon.fitting.engine' -> 'fitting'."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """facerecon units imported anywhere in ``path`` (type-checking-only imports excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facerecon."):
            found.add(_unit(node.module))
        elif isinstance(node, ast.Import):
            found.update(_unit(a.name) for a in node.names if a.name.startswith("facerecon."))
    return found


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert units == set().union(*LAYERS)


def test_imports_only_go_down():
    level = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        unit = rel.parts[0].removesuffix(".py")
        for other in _imports(path) - {unit}:
            if level[other] >= level[unit]:
                bad.append(f"{rel} imports facerecon.{other}")
    assert not bad, "imports that do not go down a layer:\n" + "\n".join(sorted(bad))
