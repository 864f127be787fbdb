"""The project's shape: packaging, layering, the README's commands, CI, and conda parity."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
UI_LIBRARIES = {"panel", "bokeh", "ipywidgets", "tornado", "jupyter_server", "jupyterlab", "param"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _imported_top_level(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_the_ui_stack() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_top_level(path) & UI_LIBRARIES)
        for path in (REPO / "workbench").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_never_imports_the_widgets() -> None:
    offenders = {}
    for path in (REPO / "workbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad = [m for m in modules if m == "workbench.widgets" or m.startswith("workbench.widgets.")]
            if bad:
                offenders.setdefault(str(path.relative_to(REPO)), []).extend(bad)
    assert offenders == {}


def _front_end_modules() -> list[Path]:
    extension = REPO / "extensions" / "workbench-jupyterlab" / "workbench_jupyterlab"
    return [*(REPO / "widgets").rglob("*.py"), *extension.rglob("*.py")]


def test_widgets_and_the_extension_use_only_names_the_core_exports() -> None:
    """``import workbench as wb``, or ``from <public core module> import <a name in its __all__>``."""
    import importlib

    wrong: dict[str, list[str]] = {}
    for path in _front_end_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names
                       if a.name.startswith("workbench.") and not a.name.startswith("workbench.widgets")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
                    node.module == "workbench" or node.module.startswith("workbench.")) and not (
                    node.module.startswith("workbench.widgets")):
                if any(part.startswith("_") for part in node.module.split(".")):
                    bad = [f"{node.module} (a private module)"]
                else:
                    exported = set(getattr(importlib.import_module(node.module), "__all__", ()))
                    bad = [f"{node.module}.{a.name}" for a in node.names if a.name not in exported]
            else:
                continue
            if bad:
                wrong.setdefault(str(path.relative_to(REPO)), []).extend(bad)
    assert wrong == {}, "use `import workbench as wb`, or export the name from the core module's __all__"


def test_the_import_contracts_of_the_layers_hold() -> None:
    """The layers DESIGN.md fixes, as import-linter contracts in pyproject.toml (also run by `make check`)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_core_module_has_its_place_in_the_layers() -> None:
    """A new module or package of the core is put in a layer (and under the UI ban) when it lands."""
    importlinter = _pyproject()["tool"]["importlinter"]
    layers, banned = importlinter["contracts"][0]["layers"], importlinter["contracts"][1]["source_modules"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    core = {f"workbench.{p.stem}" for p in (REPO / "workbench").iterdir()
            if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").exists()}
    assert core - placed == set(), "add these to [tool.importlinter]'s layers in pyproject.toml"
    assert {m for m in core - set(banned) if not m.startswith("workbench._")} == set()


def test_no_import_cycle_between_the_core_packages() -> None:
    """Not even inside functions: each pair of core packages imports in one direction at most."""
    import grimp

    graph = grimp.build_graph("workbench", exclude_type_checking_imports=True)
    units = sorted(m for m in graph.find_children("workbench") if m != "workbench.__main__")
    cycles = [(a, b) for i, a in enumerate(units) for b in units[i + 1:]
              if graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True)]
    assert cycles == []


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for init in (REPO / "workbench").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    for init in (REPO / "widgets").rglob("__init__.py"):
        found.add(".".join(("workbench", "widgets", *init.parent.relative_to(REPO / "widgets").parts)))
    assert listed == found


def test_widgets_install_as_workbench_widgets_and_never_top_level(tmp_path: Path) -> None:
    # From a folder outside the checkout, as a user's kernel sees the installed project.
    probe = (
        "import importlib.util as u, workbench.widgets as w; "
        "print(u.find_spec('widgets') is None, w.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    top_level_absent, widgets_file = out.stdout.split()
    assert top_level_absent == "True"
    assert Path(widgets_file) == REPO / "widgets" / "__init__.py"


@pytest.mark.slow
def test_the_wheel_holds_workbench_widgets_and_nothing_top_level_but_workbench(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    # `make lab` prints only what matters: no deprecation warning about the license metadata
    assert "project.license" not in built.stderr, built.stderr
    (wheel,) = tmp_path.glob("workbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"workbench", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert "workbench/widgets/__init__.py" in names


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = set(_requirement_names(project["dependencies"]))
    for extra in ("serve", "ui", "test"):
        wanted |= _requirement_names(project["optional-dependencies"][extra])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = set()
    pip: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        elif not dep.startswith(("python", "pip", "nodejs")):
            conda.add(dep)
    listed = _requirement_names(sorted(conda)) | _requirement_names([p for p in pip if not p.startswith("-e")])
    assert listed == wanted


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    head = "\n".join(lines[:15])
    commands = re.findall(r"^\s*(make \w+)\s*$", head, flags=re.M)
    assert commands == ["make lab", "make test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, flags=re.M)
    assert re.search(r"^\s*make check\b", ci, flags=re.M)  # typing and the import contracts


def test_test_modules_have_unique_names() -> None:
    """pytest imports test files by their base name (no packages under tests/): two alike cannot both run."""
    names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_a_function_named_like_its_module_stays_the_function_whatever_is_used_first() -> None:
    """``wb.VersionDiff`` imports ``workbench.diff``, which binds ``workbench.diff`` to the module;
    ``wb.diff`` must still be the function."""
    code = "import workbench as wb; wb.VersionDiff; print(callable(wb.diff), wb.diff.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "workbench.diff"]


def test_every_public_name_of_workbench_is_listed_once_and_resolves() -> None:
    import workbench as wb
    from workbench.lazy import typed_exports

    exports = typed_exports(REPO / "workbench" / "__init__.py")
    assert sorted(exports) == wb.__all__ == sorted(set(wb.__all__))
    for name in wb.__all__:
        assert getattr(wb, name) is not None, name
    assert issubclass(wb.ModelNotFoundError, wb.WorkbenchError)  # the exception tree is on wb
