"""training/campaign_curve.py on run folders written the way `fer-batch train` writes them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "campaign_curve.py"


def _run_folder(path: Path, accuracies, cpu_s=None):
    """A run folder as ``fer-batch train`` leaves it; without ``cpu_s``, one from before epoch_times.csv existed."""
    path.mkdir(parents=True)
    (path / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n" + "".join(
        f"{i},0.5,1.0,{a},1.0\n" for i, a in enumerate(accuracies)))
    if cpu_s is not None:
        (path / "epoch_times.csv").write_text("epoch,wall_s,cpu_s,load_avg\n" + "".join(
            f"{i},{c / 2},{c},1.0\n" for i, c in enumerate(cpu_s)))


def _table(stdout: str) -> dict:
    """{run: [(epoch, accuracy, cpu_h)]} from the printed tables."""
    tables, name = {}, None
    for line in stdout.splitlines():
        if line.endswith(" epochs"):
            name = line.split(":")[0]
            tables[name] = []
        elif name and line.split() and line.split()[0].isdigit():
            epoch, accuracy, _, hours = line.split()
            tables[name].append((int(epoch), float(accuracy), float(hours.lstrip("~"))))
    return tables


def test_chain_puts_the_runs_end_to_end(tmp_path):
    _run_folder(tmp_path / "a", [0.60, 0.62], [1800, 1800])
    _run_folder(tmp_path / "b", [0.63, 0.65, 0.64], [3600, 3600, 3600])
    png = tmp_path / "curve.png"
    alone = subprocess.run([sys.executable, SCRIPT, tmp_path / "a", tmp_path / "b"], capture_output=True, text=True)
    chained = subprocess.run([sys.executable, SCRIPT, tmp_path / "a", tmp_path / "b", "--chain", "--ymin", "55",
                              "--floor", "fast=68", "--png", png], capture_output=True, text=True)
    assert alone.returncode == 0 and chained.returncode == 0, chained.stderr
    assert _table(alone.stdout)["b"] == [(1, 63.0, 1.0), (2, 65.0, 2.0), (3, 64.0, 3.0)]
    assert _table(chained.stdout)["a"] == [(1, 60.0, 0.5), (2, 62.0, 1.0)]
    assert _table(chained.stdout)["b"] == [(1, 63.0, 2.0), (2, 65.0, 3.0), (3, 64.0, 4.0)]  # after a's hour
    assert "best: 65.00% after epoch 2" in chained.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_chart_draws_each_floor_and_starts_at_ymin(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from campaign_curve import curve, draw
    finally:
        sys.path.pop(0)
    _run_folder(tmp_path / "a", [0.60, 0.62], [1800, 1800])
    fig = draw({"a": curve(tmp_path / "a")}, [("fast", 68.0), ("accurate", 70.0)], ymin=55, chained=True)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 55
    dashed = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    assert dashed == [68.0, 70.0]
    assert {t.get_text() for t in ax.texts} == {"fast floor 68%", "accurate floor 70%"}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a"]  # the floors are labelled on the chart


def _usage_error(*args) -> str:
    done = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    assert done.returncode == 2, done.stdout
    return done.stderr


def test_usage_errors_name_what_is_wrong(tmp_path):
    _run_folder(tmp_path / "a", [0.6], [60])
    _run_folder(tmp_path / "old", [0.5])  # no epoch_times.csv
    _run_folder(tmp_path / "other" / "a", [0.6], [60])
    for spec in ("fast:68", "=68", "fast=inf", "fast=high"):
        assert f"--floor {spec!r}: expected NAME=PERCENT" in _usage_error(tmp_path / "a", "--floor", spec)
    assert f"--chain: {tmp_path / 'old'} has no timed epoch" in _usage_error(tmp_path / "old", tmp_path / "a",
                                                                             "--chain")
    assert "two runs share a folder name" in _usage_error(tmp_path / "a", tmp_path / "other" / "a")


def test_a_run_without_validation_faces_counts_its_hours_and_draws_no_points(tmp_path):
    """Its history.csv says NA for val_accuracy: the whole chart failed (ValueError: could not convert 'NA')."""
    _run_folder(tmp_path / "a", [0.60, 0.62], [1800, 1800])
    _run_folder(tmp_path / "b", ["NA", "NA"], [3600, 3600])
    _run_folder(tmp_path / "c", [0.63], [1800])
    done = subprocess.run([sys.executable, SCRIPT, tmp_path / "a", tmp_path / "b", tmp_path / "c", "--chain",
                           "--png", tmp_path / "curve.png"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "     1             -     3600         2.00" in done.stdout, done.stdout
    assert "c: 1 epochs" in done.stdout and "     1         63.00     1800         3.50" in done.stdout, done.stdout
    assert (tmp_path / "curve.png").stat().st_size > 1000
