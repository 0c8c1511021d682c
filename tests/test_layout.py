"""The package's folders follow the pipeline's phases, and imports only flow downstream."""
import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
# Shared helpers first, then the phases in the order data flows through them, then what a person runs.
PHASES = ["pipeline", "pipeline.data", "pipeline.features", "pipeline.modeling", "pipeline.report", "commands"]
COMMANDS = {"pipeline.predict", "pipeline.export", "pipeline.demo", "pipeline.benchmark", "pipeline.workspace"}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(module):
    """The package's modules that `module` imports by name, anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= (names & MODULES.keys()) or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
    return found - {module}


def phase(module):
    if module in COMMANDS or module.startswith("pipeline.stages"):
        return PHASES.index("commands")
    return max(i for i, name in enumerate(PHASES[:-1]) if module == name or module.startswith(name + "."))


def test_no_module_imports_from_a_later_phase():
    upstream = [f"{module} imports {other}" for module in MODULES for other in imported(module)
                if phase(other) > phase(module)]
    assert not upstream


def test_no_import_cycles():
    graph = nx.DiGraph([(module, other) for module in MODULES for other in imported(module)
                        if not other.endswith("__init__") and MODULES[other].name != "__init__.py"])
    assert list(nx.simple_cycles(graph)) == []


def test_every_phase_is_a_package_with_a_docstring():
    for name in PHASES[1:-1]:
        assert ast.get_docstring(ast.parse(MODULES[name].read_text())), f"{name}/__init__.py says what it holds"
