"""The import rule of docs/architecture.md: imports point down only (inference/, then
the core, then the rooms, then the face), read from every module's source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("collector", "autoscaler", "alerts", "dashboard")
# What each layer may import besides itself.
ALLOWED = {
    "inference": set(),
    "core": {"inference"},
    **{room: {"core", "inference"} for room in ROOMS},
    "dashboard": {"core"},  # it reads the store only
    "face": {"core", "inference", *ROOMS},
}
# Known exceptions, named in docs/architecture.md ("Where the code does not follow the
# rule yet"); a new one fails the test.
KNOWN: set[tuple[str, str]] = set()


def _layer(module: str) -> str | None:
    top = module.split(".")[0]
    layers = {"inferplane": "core", "commands": "face"}
    return layers.get(top, top if top in ("inference", *ROOMS) else None)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _crossings(root: Path = ROOT) -> set[tuple[str, str]]:
    """Every (module, imported module) pair whose layers differ and are not allowed."""
    found = set()
    for package in ("inference", "inferplane", "commands", *ROOMS):
        for path in (root / package).rglob("*.py"):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            mine = _layer(module)
            assert mine is not None
            for name in _imports(path):
                theirs = _layer(name)
                if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                    found.add((module, name))
    return found


def test_imports_point_down_only() -> None:
    new = _crossings() - KNOWN
    assert not new, f"imports that point up or sideways (see docs/architecture.md): {sorted(new)}"


def test_the_known_exceptions_still_exist() -> None:
    # A fixed exception leaves the list (and the document), so the list stays the truth.
    gone = KNOWN - _crossings()
    assert not gone, f"no longer imported; remove from KNOWN and docs/architecture.md: {sorted(gone)}"


def test_the_rule_catches_upward_and_sideways_imports(tmp_path: Path) -> None:
    files = {
        "inferplane/store/reads.py": "from alerts.engine import AlertEngine\nimport inferplane.config\n",
        "alerts/rules.py": "from autoscaler.policy import decide\nfrom commands.cli_common import fail\n",
        "autoscaler/policy.py": "from inferplane.config import E\nfrom inference.trace import load_trace\n",
        "inference/app.py": "from inferplane.config import Endpoint\n",
        "commands/cli.py": "from alerts.engine import AlertEngine\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _crossings(tmp_path) == {
        ("inferplane.store.reads", "alerts.engine"),  # the core importing a room
        ("alerts.rules", "autoscaler.policy"),  # a room importing a room
        ("alerts.rules", "commands.cli_common"),  # a room importing the face
        ("inference.app", "inferplane.config"),  # the service importing the core
    }


def _package_graph(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` and the modules of it that it imports, at the top or
    lazily inside a function (``from inference import responses`` names a module too)."""
    modules = {path.stem: path for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for stem, path in modules.items():
        graph[stem] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name.split(".") for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [[*node.module.split("."), alias.name] for alias in node.names]
            else:
                continue
            for parts in targets:
                if parts[0] == package.name and len(parts) > 1:
                    graph[stem].add(parts[1] if parts[1] in modules else "__init__")
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a path back to its start), or None when the graph is acyclic."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            if (cycle := visit(imported, [*path, module])) is not None:
                return cycle
        done.add(module)
        return None

    return next((c for m in sorted(graph) if (c := visit(m, [])) is not None), None)


def test_inference_has_no_import_cycles() -> None:
    # The engine contract imports no engine and the router app's settings live apart,
    # so the service's modules form layers; a cycle (even a lazy import) brings back the
    # tangle the registry and router_settings.py removed.
    cycle = _a_cycle(_package_graph(ROOT / "inference"))
    assert cycle is None, f"inference/ modules import each other: {' -> '.join(cycle or [])}"


def test_the_cycle_check_sees_lazy_imports(tmp_path: Path) -> None:
    package = tmp_path / "inference"
    package.mkdir()
    (package / "engine.py").write_text("def build():\n    from inference.batching import Engine\n")
    (package / "batching.py").write_text("from inference import engine\n")
    (package / "app.py").write_text("import inference.engine\n")
    graph = _package_graph(package)
    assert graph == {"engine": {"batching"}, "batching": {"engine"}, "app": {"engine"}}
    assert _a_cycle(graph) == ["engine", "batching", "engine"]
    assert _a_cycle({**graph, "batching": set()}) is None
