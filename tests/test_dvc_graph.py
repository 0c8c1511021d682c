"""dvc.yaml knows everything each stage depends on, so `dvc repro` re-runs exactly what changed."""
import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def stage_definitions():
    """(stage name, its definition) with foreach stages' `do` block as the definition."""
    return [(name, stage.get("do", stage)) for name, stage in STAGES.items()]


def entry_module(stage):
    return re.search(r"python -m ([\w.]+)", stage["cmd"]).group(1)


def module_file(module):
    """The source file of a module of the package, or None for an attribute imported from a package."""
    path = PROJECT / Path(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def pipeline_imports(source):
    """The pipeline modules a source file imports, directly: `import pipeline.x`, `from pipeline(.x) import y`."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pipeline"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipeline":
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names
                      if module_file(f"{node.module}.{alias.name}")}
    # Importing pipeline.x.y runs pipeline/__init__.py and pipeline/x/__init__.py first.
    return {".".join(name.split(".")[:depth]) for name in found for depth in range(1, name.count(".") + 2)}


def files_imported(module):
    """Every pipeline source file that running `module` imports, followed to the end (its packages' too)."""
    seen, todo = set(), [".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 2)]
    while todo:
        source = module_file(todo.pop())
        if source is None or source in seen:
            continue
        seen.add(source)
        todo += pipeline_imports(source)
    return {path.relative_to(PROJECT).as_posix() for path in seen}


@pytest.mark.parametrize("name, stage", stage_definitions())
def test_every_module_a_stage_imports_is_one_of_its_deps(name, stage):
    missing = files_imported(entry_module(stage)) - set(stage["deps"])
    assert not missing, f"dvc.yaml: stage {name} imports {sorted(missing)} but does not list them in deps"


@pytest.mark.parametrize("name, stage", stage_definitions())
def test_every_setting_a_stage_reads_is_one_of_its_params(name, stage):
    """Stages read params.yaml through config.stage_params(PARAMS), which hides every other key."""
    declared = importlib.import_module(entry_module(stage)).PARAMS
    listed = [param.replace("${key}", "{name}") for param in stage["params"]]
    assert sorted(declared) == sorted(listed), f"dvc.yaml: {name} lists params {listed}, its module reads {declared}"


@pytest.mark.parametrize("name, stage", stage_definitions())
def test_stages_read_params_only_through_their_declaration(name, stage):
    source = module_file(entry_module(stage)).read_text()
    assert "load_params(" not in source and "stage_params(PARAMS" in source


def test_the_features_follow_the_images_themselves():
    """Fixing an image in place must re-extract features, not only re-train the scratch CNN."""
    assert "${data.dir}" in STAGES["features"]["deps"]


def test_the_import_walk_finds_indirect_imports():
    """report imports selection, which imports evaluation: both must be found, and the package's __init__."""
    found = files_imported("pipeline.stages.report")
    assert {"pipeline/report/selection.py", "pipeline/modeling/evaluation.py", "pipeline/__init__.py",
            "pipeline/stages/__init__.py"} <= found
