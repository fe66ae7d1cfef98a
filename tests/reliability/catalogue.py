"""The catalogue of every fault-injection case: case -> component -> fault -> what the test asserts.

Built from the very tables the tests are parametrised with (``FAULTS``/``BUGS`` of test_rel_bad_stores,
``CASES`` of test_rel_bad_config) plus the rows below for the kill and hostile-file tests, so the docs
cannot list a case no test checks. ``python tests/reliability/catalogue.py --write`` also runs each
bad-store and bad-config case once and records the error actually raised, then rewrites the table in
docs/reliability.md (test_rel_catalogue.py checks the doc still lists every case as the tests assert it).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOC = REPO / "docs" / "reliability.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)


@dataclass(frozen=True)
class Row:
    case: str
    component: str
    fault: str
    expected: str  # what the test asserts
    test: str  # test function name (module::function)
    bug: str | None = None  # strict-xfail reason while the bug is open


KILL_ROWS = [
    Row("kill/distill", "stages.distill (SBG source, dask)", "SIGKILL after 1-6 of 8 shards + 0-0.12 s (3 seeded "
        "points), and once the webdataset export starts", "done-flagged shards equal an uninterrupted run's; index.json only over whole tars; rerun -> "
        "byte-identical array chunks and tars, same spec (except created_at)",
        "test_rel_kill::test_distill_killed_resumes_to_same_bytes"),
    Row("kill/train_diffusion", "stages.train_diffusion", "SIGKILL after 1-3 of 4 checkpoint saves + 0-0.3 s "
        "(3 points)", "checkpoint loadable, at a save step; no loss.csv/samples.png before the end; rerun -> "
        "model+EMA torch.equal to the uninterrupted run, same loss history and loss.csv",
        "test_rel_kill::test_diffusion_killed_resumes_to_same_weights"),
    Row("kill/train", "stages.train (pag-cm, streamed store)", "SIGKILL after 1-4 of 6 epoch checkpoints + 0-0.1 s "
        "(3 points)", "checkpoint loadable with history == epoch; no metrics.json before the end; rerun -> "
        "state_dict torch.equal to the uninterrupted run, same history (minus seconds), same test_acc",
        "test_rel_kill::test_classifier_killed_resumes_to_same_weights"),
    Row("kill/train-stale-temp", "pagstore.atomic + stages.train", "temp file a kill inside atomic_path leaves "
        "(.checkpoint.pt.*.tmp.pt)", "the finished rerun's output dir holds only checkpoint.pt",
        "test_rel_kill::test_classifier_rerun_leaves_no_stale_temp_file"),
]

HOSTILE_ROWS = [
    Row("hostile/diffusion-checkpoint-pickle", "improved_diffusion.checkpoint.load_checkpoint",
        "torch.save'd object whose __reduce__ runs os.system('touch marker')",
        "CheckpointError naming checkpoint.pt; marker not created",
        "test_rel_hostile::test_diffusion_load_checkpoint_refuses_pickle"),
    Row("hostile/classifier-checkpoint-pickle", "training.checkpoint.load_classifier", "same payload",
        "CheckpointError naming checkpoint.pt; marker not created",
        "test_rel_hostile::test_classifier_load_classifier_refuses_pickle"),
    Row("hostile/train-resume-pickle", "training.run.train_method (resume)", "poisoned checkpoint.pt in --out",
        "CheckpointError; marker not created; no metrics written",
        "test_rel_hostile::test_training_resume_refuses_pickled_checkpoint"),
    Row("hostile/prepared-object-array", "data.prepared.load_split", "object-dtype images array in train.npz",
        "PreparedDataError naming train.npz (np.load allow_pickle=False); marker not created",
        "test_rel_hostile::test_prepared_split_with_object_array_is_refused"),
    Row("hostile/cifar-pickle-global", "data.safe_pickle.restricted_loads", "CIFAR batch pickle calling os.system",
        "RawDataError \"refusing global 'posix.system'\"; marker not created",
        "test_rel_hostile::test_restricted_unpickler_refuses_foreign_globals"),
    Row("hostile/tar-object-npy", "loaders.stream_batches (shards.load_npy)", "object-dtype .npy in a tar shard "
        "(sha256 in index.json updated)", "ExportError naming grads-000000.tar and s00000003; marker not created",
        "test_rel_hostile::test_object_npy_in_tar_shard_is_refused"),
    Row("hostile/tar-escaping-member", "loaders.stream_batches (shards.tar_samples)", "member named /tmp/..., "
        "../..., ../../escape/... (3 cases)", "ExportError naming the tar; nothing written outside",
        "test_rel_hostile::test_webdataset_reader_refuses_escaping_member_names"),
    Row("hostile/raw-tar-escaping-member", "data.raw.read_tar_members", "member /etc/..., ../evil, a/../../evil, "
        "\\windows\\evil (4 cases)", "RawDataError naming the archive, 'refusing'; nothing extracted",
        "test_rel_hostile::test_raw_reader_refuses_escaping_member_names"),
    Row("hostile/cifar-reader-escaping-member", "data.registry.read_dataset('cifar10')", "archive with ../evil",
        "RawDataError 'refusing'", "test_rel_hostile::test_cifar_reader_refuses_escaping_member_names"),
    Row("hostile/code-scan", "pagstore/, stages/, benchmarks/ (AST scan)", "pickle.load(s)/Unpickler outside "
        "safe_pickle.py, torch.load without weights_only=True, allow_pickle=True, yaml.load, dill/joblib loads",
        "none found", "test_rel_hostile::test_no_pickle_loading_in_the_code_base"),
    Row("hostile/code-scan-self-test", "the scanner", "planted file with each forbidden call",
        "each reported at its line", "test_rel_hostile::test_pickle_scan_catches_each_pattern"),
]

CONTROL_ROWS = [
    Row("bad-store/control", "all readers + verify", "unbroken copy of the store", "reads and verifies clean",
        "test_rel_bad_stores::test_pristine_store_reads_and_verifies"),
    Row("catalogue", "docs/reliability.md", "doc drift / uncatalogued test", "every test and case listed",
        "test_rel_catalogue::*"),
]


FAULT_TEXT = {
    "zarr-flipped-bytes": "3 bytes flipped in grads shard file 1 (grads/c/1/0/0/0/0)",
    "zarr-missing-shard-file": "grads shard file 2 deleted (done flag still set)",
    "zarr-nan-grads": "NaN written into grads of sample 11 (shard 1) through zarr directly",
    "zarr-label-out-of-range": "label 7 (C=3) written for sample 10 through zarr directly",
    "zarr-wrong-dtype": "grads array metadata says float16, spec says float32",
    "zarr-wrong-shape": "spec sample_shape [1, 4, 5] vs arrays (1, 4, 4)",
    "spec-unknown-version": "format_version 99 (zarr attrs + export index)",
    "spec-missing-key": "grad_dtype deleted from the spec (zarr attrs + export index)",
    "zarr-done-flag-cleared": "done flag of shard 1 removed (an unfinished store)",
    "tar-truncated": "grads-000001.tar cut to half its size",
    "tar-flipped-bytes": "3 bytes flipped in grads-000001.tar",
    "tar-missing": "grads-000002.tar deleted",
    "tar-wrong-shape": "s00000010.grads.npy (3, 1, 4, 5); index sha256 updated",
    "tar-wrong-dtype": "s00000010.grads.npy float64; index sha256 updated",
    "tar-nan-grads": "s00000010.grads.npy all NaN; index sha256 updated",
    "tar-label-out-of-range": "s00000010.cls = 9 (C=3); index sha256 updated",
    "tar-missing-member": "s00000010.grads.npy removed; index sha256 updated",
}


def store_rows() -> list[Row]:
    import test_rel_bad_stores as bs

    rows = []
    for fault, (_, layer, fragment) in bs.FAULTS.items():
        readers = [r for r in bs.READERS if layer in bs.READS_LAYER[r]]
        readers += [c for c in bs.CLI_READS_LAYER if layer in bs.CLI_READS_LAYER[c] and (c, fault) not in bs.CLI_SKIPS]
        readers += ["verify"]
        for reader in readers:
            test, what = {
                "verify": ("test_verify_names_the_fault", "report not ok + `pagstore verify` exit 1, no traceback"),
                "pagstore inspect": ("test_cli_refuses_corrupt_store", "exit != 0, no traceback"),
                "pagstore export": ("test_cli_refuses_corrupt_store", "exit != 0, no traceback"),
            }.get(reader, ("test_reader_refuses_corrupt_store", "StoreError/SpecError/ExportError"))
            rows.append(Row(f"bad-store/{fault}", "verify_store + CLI" if reader == "verify" else reader,
                            FAULT_TEXT[fault],
                            f"{what}, naming `{fragment}`", f"test_rel_bad_stores::{test}",
                            bs.BUGS.get((reader, fault))))
    return rows


def config_rows() -> list[Row]:
    import test_rel_bad_config as bc

    rows = []
    for case, (stage, over, drop, fragments, stores, bug) in bc.CASES.items():
        parts = [f"set {_flat(over)}" if over else "", f"delete {', '.join(drop)}" if drop else ""]
        fault = "; ".join(p for p in parts if p)
        fault = fault or {"other": "store of another dataset (--stores)",
                          "incomplete": "unfinished store: shard 1 not done (--stores)"}[stores]
        rows.append(Row(f"bad-config/{case}", f"stages.{stage}", fault,
                        "raises before work, names " + ", ".join(f"`{f}`" for f in fragments) + "; no output",
                        "test_rel_bad_config::test_bad_config_refused_before_work", bug))
    rows.append(Row("bad-config/process-exit", "python -m stages.train / stages.train_diffusion",
                    "train-store-of-other-dataset, diffusion-unknown-key, train-unknown-key as real processes",
                    "exit status != 0, one line on stderr naming the key, no traceback, no output",
                    "test_rel_bad_config::test_bad_config_process_exits_nonzero"))
    rows.append(Row("bad-config/debug-traceback", "python -m stages.train", "train-unknown-key with PAGSTORE_DEBUG=1",
                    "exit status != 0, the ConfigError traceback on stderr",
                    "test_rel_bad_config::test_debug_env_keeps_the_traceback"))
    return rows


def _flat(d: dict, prefix: str = "") -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, dict):
            parts.append(_flat(v, f"{prefix}{k}."))
        else:
            parts.append(f"{prefix}{k}={v!r}")
    return ", ".join(parts)


def all_rows() -> list[Row]:
    return KILL_ROWS + store_rows() + config_rows() + HOSTILE_ROWS + CONTROL_ROWS


def observe() -> dict[str, str]:
    """Run every bad-store (reader, fault) and bad-config case once; the exception actually raised."""
    import importlib
    import shutil
    import tempfile

    import test_rel_bad_config as bc
    import test_rel_bad_stores as bs
    from rel_fixtures import build_store, tiny_split

    seen: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pristine = build_store(root / "pristine", tiny_split(n=24, size=4))
        for row in store_rows():
            fault = row.case.split("/", 1)[1]
            store = root / "s"
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(pristine, store)
            bs.FAULTS[fault][0](store)
            if row.component.startswith("verify"):
                report = bs.verify_store(store)
                msg = report.problems[0].message if report.problems else "OK (nothing found)"
                seen[f"{row.case}|{row.component}"] = _short(msg, tmp)
                continue
            if row.component.startswith("pagstore "):
                from typer.testing import CliRunner

                res = CliRunner().invoke(bs.app, [row.component.split()[1], str(store)])
                if res.exception is not None and not isinstance(res.exception, SystemExit):
                    err = f"raw {type(res.exception).__name__}: {res.exception}"
                elif res.exit_code == 0:
                    err = "no error"
                else:
                    err = res.output.strip().splitlines()[-1]
                seen[f"{row.case}|{row.component}"] = _short(f"exit {res.exit_code}: {err}", tmp)
                continue
            try:
                bs.READERS[row.component](store)
                seen[f"{row.case}|{row.component}"] = "no error"
            except BaseException as exc:  # noqa: BLE001 - recording whatever escapes is the point
                seen[f"{row.case}|{row.component}"] = _short(f"{type(exc).__name__}: {exc}", tmp)
        inputs = root / "inputs"
        inputs.mkdir()
        _config_inputs(inputs)
        for case, (stage, over, drop, _, stores, _) in bc.CASES.items():
            params = bc.write_params(root / f"{case}.yaml", bc._merge_all(over), drop)
            argv = bc._stage(stage, inputs, params, root / f"out-{case}", stores)
            try:
                importlib.import_module(argv[0]).main(argv[1:])
                seen[f"bad-config/{case}|stages.{stage}"] = "no error (ran)"
            except BaseException as exc:  # noqa: BLE001
                text = exc.code if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
                seen[f"bad-config/{case}|stages.{stage}"] = _short(str(text), tmp)
    return seen


def _config_inputs(root: Path) -> None:
    from rel_fixtures import build_store, write_diffusion_checkpoint, write_prepared
    from test_rel_bad_config import _unfinished

    from pagstore.data.prepared import load_split

    split = load_split(write_prepared(root, n=24) / "train.npz")
    build_store(root / "stores" / "cm", split)
    build_store(root / "other" / "cm", split, fingerprint="sha256:" + "0" * 64)
    _unfinished(build_store(root / "incomplete" / "cm", split))
    write_diffusion_checkpoint(root / "diffusion.pt", split)


def _short(msg: str, tmp: str, n: int = 150) -> str:
    msg = re.sub(r"\s+", " ", msg.replace(tmp, "…")).replace("|", "\\|")
    return msg if len(msg) <= n else msg[: n - 1] + "…"


def render(observed: dict[str, str] | None = None) -> str:
    """The markdown table (with an "observed" column when ``observed`` is given)."""
    observed = observed or {}
    head = "| case | component | fault | asserted outcome | status | observed (last `--write`) |\n"
    head += "|---|---|---|---|---|---|\n"
    lines = []
    for r in all_rows():
        status = f"**XFAIL** {r.bug}" if r.bug else "pass"
        obs = observed.get(f"{r.case}|{r.component}", "")
        lines.append(f"| {r.case} | {r.component} | {r.fault} | {r.expected} | {status} | {obs} |")
    return head + "\n".join(lines) + "\n"


def write_doc(observed: dict[str, str]) -> None:
    text = DOC.read_text()
    a, b = text.index(START) + len(START), text.index(END)
    DOC.write_text(text[:a] + "\n" + render(observed) + text[b:])


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    if "--write" in sys.argv:
        write_doc(observe())
    else:
        print(render())
