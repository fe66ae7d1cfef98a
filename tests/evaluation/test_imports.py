import subprocess
import sys


def test_evaluation_modules_do_not_import_pyautoattack_or_matplotlib_eagerly():
    code = ("import sys, pagstore, stages.evaluate, stages.report\n"
            "import pagstore.evaluation.autoattack, pagstore.evaluation.apgd_sweep, pagstore.evaluation.pictures\n"
            "import pagstore.evaluation.alignment, pagstore.evaluation.corruptions\n"
            "bad = [m for m in ('pyautoattack', 'matplotlib', 'zarr') if m in sys.modules]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
