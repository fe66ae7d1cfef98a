"""The whole stage graph in one tiny real DVC project (issue 17): a clean run says no warnings, a no-op
``dvc repro`` is fast, ``dvc metrics show`` is readable, ``dvc plots show`` overlays every method, and the
README's experiment and recovery commands work as written."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.doc_commands import run_documented
from tests.helpers.dvc_project import dvc, run
from tests.pipeline.tiny_pipeline import ALL_METHODS, tiny_pipeline

pytestmark = pytest.mark.slow  # the full graph: ~3 minutes on a shared 2-core CPU
WIDTH = 160
MAX_METRICS_PER_MODEL = 12
LEAN_COLUMNS = ("clean", "l2", "linf", "l2_large", "linf_large", "sbg_cos", "etmann", "test_acc", "align", "train_s")
_PIPELINE = yaml.safe_load((Path(__file__).resolve().parents[2] / "pipeline.yaml").read_text())
DEFAULT_METHODS = [*_PIPELINE["train"]["methods"], *_PIPELINE["train"]["plain_methods"]]
OVERLAYS = ("plots/report/robust_vs_eps_l2.csv", "plots/report/robust_vs_eps_linf.csv",
            "plots/report/test_acc_vs_epoch.csv", "plots/report/robust_vs_alignment.csv")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tiny_pipeline(tmp_path_factory.mktemp("pipeline"))
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "tiny pipeline"], cwd=root)
    out = dvc(root, "repro")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "tiny run"], cwd=root)
    return root, out.stdout + out.stderr


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def test_clean_run_has_no_warnings(project):
    root, log = project
    assert "WARNING" not in log, [line for line in log.splitlines() if "WARNING" in line]
    assert "report" in (root / "dvc.lock").read_text()


def test_noop_repro_is_fast(project):
    root, _ = project
    start = time.perf_counter()
    out = dvc(root, "repro")
    seconds = time.perf_counter() - start
    print(f"no-op dvc repro of {len(ALL_METHODS)} methods' graph: {seconds:.2f} s")
    assert "Running stage" not in out.stdout and "WARNING" not in out.stdout + out.stderr
    assert seconds < 5.0


def test_metrics_are_lean_and_fit_a_terminal(project):
    root, _ = project
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout)[""]["data"]
    toy = {f"metrics/toy/{m}{s}.json" for m in ("vanilla", "nn-pag") for s in ("", ".std")}
    assert set(shown) == {*(f"metrics/{k}/{m}.json" for k in ("train", "eval") for m in ALL_METHODS), *toy,
                          "metrics/correlation/l2.json", "metrics/correlation/linf.json",
                          "metrics/noisy_classifier.json"}
    keys = set()
    for path in shown:
        metrics = json.loads((root / path).read_text())
        assert 0 < len(metrics) <= MAX_METRICS_PER_MODEL, (path, sorted(metrics))
        # Scalars only (a correlation over three tiny models can be null: zero variance).
        assert all(v is None or isinstance(v, (int, float)) for v in metrics.values()), (path, metrics)
        keys |= set(metrics)
    # One vocabulary for every kind of file: DVC prints one column per distinct key.
    assert keys <= set(LEAN_COLUMNS), sorted(keys - set(LEAN_COLUMNS))
    # The whole table, every file at once. The default run's longest method name widens the path column
    # by the difference (its values are as wide as these: percent with one decimal, three-decimal cosines).
    table = dvc(root, "metrics", "show").stdout
    longest = max(len(m) for m in DEFAULT_METHODS) - max(len(m) for m in ALL_METHODS)
    print(f"dvc metrics show: {_width(table)} columns here, {_width(table) + longest} with the default methods")
    assert _width(table) + max(longest, 0) <= WIDTH, table


def test_plots_show_overlays_every_method(project):
    root, _ = project
    shown = json.loads(dvc(root, "plots", "show", "--json").stdout)["data"]
    for plot_id in OVERLAYS:
        content = shown[plot_id][0]["content"]
        assert content["encoding"].get("color", {}).get("field") == "method" or any(
            layer["encoding"].get("color", {}).get("field") == "method" for layer in content.get("layer", []))
        assert {row["method"] for row in content["data"]["values"]} == set(ALL_METHODS), plot_id
    # The per-model training curves are drawn only together.
    assert not any(k.startswith("plots/train/") for k in shown)


def test_experiment_recovery_and_temp_run_as_documented(project):
    root, _ = project
    committed = (root / "pipeline.yaml").read_text()
    # A failing experiment (a mistyped value) leaves pipeline.yaml edited and the stage's outputs removed.
    failed = dvc(root, "exp", "run", "-S", "pipeline.yaml:++train.methods.pag-cm.lam=high", check=False)
    assert failed.returncode != 0 and "lam" in failed.stdout + failed.stderr
    assert (root / "pipeline.yaml").read_text() != committed
    assert not (root / "metrics" / "train" / "pag-cm.json").exists()
    run_documented("git checkout pipeline.yaml dvc.lock metrics plots reports && dvc checkout", cwd=root)
    assert (root / "pipeline.yaml").read_text() == committed
    assert dvc(root, "status").stdout.strip() == "Data and pipelines are up to date."
    # --temp runs in a copy: the workspace (params and outputs) stays as committed.
    before = (root / "metrics" / "train" / "pag-cm.json").read_text()
    dvc(root, "exp", "run", "--temp", "-S", "pipeline.yaml:++train.methods.pag-cm.lam=0.4")
    assert (root / "pipeline.yaml").read_text() == committed
    assert (root / "metrics" / "train" / "pag-cm.json").read_text() == before
    # The README's experiment, in the workspace: only pag-cm's training and evaluation and the report rerun.
    out = run_documented("dvc exp run -S pipeline.yaml:++train.methods.pag-cm.lam=0.3", cwd=root)
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"train@pag-cm", "evaluate@pag-cm", "report"}, ran
    table = run_documented("dvc exp show --only-changed", cwd=root).stdout
    header = next(line for line in table.splitlines() if "Experiment" in line)
    metric_columns = [c for c in header.split() if ".json:" in c]
    print(f"dvc exp show --only-changed: {_width(table)} columns wide, {len(metric_columns)} metric columns")
    assert "train.methods.pag-cm.lam" in header
    # Only the changed model's scalars (and the report's correlations), not its parameters and meta.
    assert all(c.startswith(("metrics/train/pag-cm.json:", "metrics/eval/pag-cm.json:", "metrics/correlation/"))
               for c in metric_columns), metric_columns
    assert len([c for c in metric_columns if "pag-cm" in c]) <= 2 * MAX_METRICS_PER_MODEL
    # The narrow view of the same change: one metric per line.
    diff = run_documented("dvc exp diff", cwd=root).stdout
    print(f"dvc exp diff: {_width(diff)} columns wide, {len(diff.splitlines())} lines")
    assert "metrics/eval/pag-cm.json" in diff and "train.methods.pag-cm.lam" in diff
    assert _width(diff) <= WIDTH, diff
