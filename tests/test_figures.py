"""The measured figures of README.md and docs/ are what results/ holds: scripts/figures.py
renders them from the stored results, and these tests fail when the two differ. Fast: no
training, no emulator; the script runs as users run it, in a child process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "figures.py"
RENDERED = ("README.md", "docs/accuracy.md", "docs/performance.md", "docs/adaptation.md")
IMAGES = ("docs/adaptation-tradeoff.png",)


def figures(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True,
                          text=True, timeout=120)


def test_the_readme_and_docs_print_what_results_hold():
    r = figures("--check")
    assert (r.returncode, r.stderr) == (0, ""), f"run python scripts/figures.py:\n{r.stdout}{r.stderr}"
    assert r.stdout == ""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the script reads and writes."""
    for name in (*RENDERED, *IMAGES):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    return tmp_path


def snapshot(root: Path) -> dict[str, str | bytes]:
    return {**{name: (root / name).read_text(encoding="utf-8") for name in RENDERED},
            **{name: (root / name).read_bytes() for name in IMAGES}}


def region(text: str, name: str) -> str:
    m = re.search(rf"^<!-- figures:{name} -->\n(.*?)^<!-- /figures -->$", text, re.M | re.S)
    assert m, name
    return m.group(1)


def test_a_figure_edited_by_hand_is_caught_and_rendered_back(tree: Path):
    original = snapshot(tree)
    table = region(original["README.md"], "accuracy-defaults")
    edited = table.replace("| 95.35 % |", "| 95.77 % |", 1)
    assert edited != table
    (tree / "README.md").write_text(original["README.md"].replace(table, edited), encoding="utf-8")

    r = figures("--check", root=tree)
    assert r.returncode == 1 and r.stdout == "README.md: region 'accuracy-defaults' differs from results/\n"
    assert "95.77" in (tree / "README.md").read_text(encoding="utf-8")  # --check writes nothing

    r = figures(root=tree)
    assert r.returncode == 0 and snapshot(tree) == original


def test_a_new_measurement_changes_every_figure_drawn_from_it(tree: Path):
    counts = tree / "results" / "instructions-per-sample.json"
    data = json.loads(counts.read_text())
    data["cortex-m4"]["batch_100"] += 1000
    counts.write_text(json.dumps(data))
    new = f"{data['cortex-m4']['batch_100']:,}"

    r = figures("--check", root=tree)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["README.md: region 'instructions' differs from results/",
                                     "docs/performance.md: region 'instructions-cores' differs from results/"]
    assert figures(root=tree).returncode == 0
    assert f"| Cortex-M4 | {new} |" in (tree / "README.md").read_text(encoding="utf-8")
    assert f"| {new} |" in (tree / "docs/performance.md").read_text(encoding="utf-8")
    assert figures("--check", root=tree).returncode == 0


def _change_row(path: Path, config: str, who: str, **values) -> None:
    """Sets ``values`` in learner ``who``'s part of row ``config`` of a results file, on the last
    JSON line that holds that row (the run the tables read)."""
    lines = path.read_text().rstrip("\n").split("\n")
    number = max(i for i, line in enumerate(lines) if line.startswith("{")
                 and any(r["config"] == config for r in json.loads(line)["rows"]))
    doc = json.loads(lines[number])
    next(r for r in doc["rows"] if r["config"] == config)[who].update(values)
    lines[number] = json.dumps(doc)
    path.write_text("\n".join(lines) + "\n")


def _rendered_row(tree: Path, name: str, key: str) -> list[str]:
    """After the rendering changed: the cells of row ``key`` of docs/accuracy.md's region ``name``."""
    r = figures("--check", root=tree)
    assert r.returncode == 1 and r.stdout == f"docs/accuracy.md: region '{name}' differs from results/\n"
    assert figures(root=tree).returncode == 0
    return _rendered_row_now(tree, name, key)


def _rendered_row_now(tree: Path, name: str, key: str) -> list[str]:
    """The cells of row ``key`` of docs/accuracy.md's region ``name`` as the tree holds it."""
    table = region((tree / "docs/accuracy.md").read_text(encoding="utf-8"), name)
    line = next(line for line in table.splitlines() if line.startswith(f"| {key} |"))
    return [c.strip() for c in line.split("|")[1:-1]]


def test_the_accuracy_table_prints_each_learners_training_time(tree: Path):
    """The s columns are the seconds each file records beside the accuracies: BEP's and QAT's."""
    raw = tree / "results" / "bep-vs-qat-rnn.out"
    for who, seconds in (("bep", 123.4), ("qat", 4567.8), ("qat_bn", 89.6)):
        _change_row(raw, "GunPoint:rnn", who, seconds=seconds)
    cells = _rendered_row(tree, "accuracy-table", "GunPoint:rnn")
    assert (cells[3], cells[5], cells[7]) == ("123", "4568", "90")


def test_a_row_run_again_later_replaces_its_earlier_run(tree: Path):
    """A results file's JSON line appended after a change (one row run again) replaces that row
    where the table prints it; the other rows keep the first line's runs."""
    raw = tree / "results" / "bep-vs-qat-holdout-rnn.out"
    first = json.loads(raw.read_text(encoding="utf-8").strip().splitlines()[-1])
    again = dict(next(r for r in first["rows"] if r["config"] == "PickupGestureWiimoteZ:rnn"))
    again["bep"] = {**again["bep"], "scores": [0.6, 0.62, 0.64], "seconds": 9.0}
    with raw.open("a", encoding="utf-8") as fh:
        print(json.dumps({**first, "rows": [again]}), file=fh)
    cells = _rendered_row(tree, "accuracy-table", "PickupGestureWiimoteZ:rnn")
    assert cells[1:4] == ["62.0 ± 1.6", "60.00 62.00 64.00", "9"]
    table = region((tree / "docs/accuracy.md").read_text(encoding="utf-8"), "accuracy-table")
    keys = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert keys.index("JapaneseVowels:rnn") + 1 == keys.index("PickupGestureWiimoteZ:rnn") == keys.index("ACSF1:rnn") - 1


def test_a_row_run_again_by_bep_alone_replaces_its_bep_columns_only(tree: Path):
    """A line of BEP alone (``bench accuracy`` without ``--baseline``, after a change of BEP's
    settings that leaves the baselines' inputs as they were) replaces the row's BEP columns; its
    QAT and QAT + BN columns stay the earlier run's."""
    raw = tree / "results" / "fresh2-sets.out"
    before = _rendered_row_now(tree, "fresh2-table", "clusters-4:mlp")
    first = next(json.loads(line) for line in raw.read_text(encoding="utf-8").splitlines() if line.startswith("{"))
    row = next(r for r in first["rows"] if r["config"] == "clusters-4:mlp")
    alone = {k: v for k, v in row.items() if k not in ("qat", "qat_bn")}
    alone["bep"] = {**row["bep"], "scores": [0.5, 0.52, 0.54], "train": [0.9, 0.9, 0.9], "seconds": 3.0}
    with raw.open("a", encoding="utf-8") as fh:
        print(json.dumps({"baseline": None, "preset": None, "rows": [alone]}), file=fh)
    cells = _rendered_row(tree, "fresh2-table", "clusters-4:mlp")
    assert cells[1:5] == ["52.0 ± 1.6", "50.00 52.00 54.00", "90.0", "3"]
    assert cells[5:9] == before[5:9]  # QAT and QAT + BN: the earlier run's


def test_a_held_out_table_marks_rows_outside_the_bar_and_low_seeds(tree: Path):
    """The held-out checks' tables are computed from their files: the gap to the better baseline
    (bold "outside" beyond 1.5 points), the lowest seed's share of its row (bold below 90 %), the
    training accuracy and the seconds."""
    _change_row(tree / "results" / "fresh2-sets.out", "diabetes-3:mlp", "bep", scores=[0.6, 0.6, 0.4],
                train=[0.9, 0.8, 0.7], seconds=77.0)
    _change_row(tree / "results" / "fresh2-sets.out", "sparse-50:mlp", "bep", scores=[0.75, 0.75, 0.75])
    cells = _rendered_row(tree, "fresh2-table", "diabetes-3:mlp")
    # 53.3 against QAT + BN's 53.0: inside the bar now; 40 is 75 % of 53.3
    assert cells[1:5] == ["53.3 ± 9.4", "60.00 60.00 40.00", "80.0", "77"]
    assert (cells[9], cells[10]) == ("+0.3", "**75 %**")
    table = region((tree / "docs/accuracy.md").read_text(encoding="utf-8"), "fresh2-table")
    sparse = next(line for line in table.splitlines() if line.startswith("| sparse-50:mlp |"))
    assert sparse.split("|")[10].strip() == "−4.8 **outside**"  # 75.0 against QAT + BN's 79.8


def _a_bep_accuracy_changed(doc):
    row = next(r for r in doc["rows"] if (r["scenario"], r["method"]) == ("drift:digits", "bep-last-layer"))
    row["after"] = round(row["after"] - 0.01, 6)


def test_a_new_measurement_draws_the_adaptation_figure_again(tree: Path):
    """The figure is stale when the values it draws change (the digest in its PNG text chunk), drawn again
    from them, and then current; a figure drawn from other values (or none) is caught by --check."""
    from PIL import Image

    png = tree / IMAGES[0]
    _json_edit(_a_bep_accuracy_changed)(tree / "results" / "adaptation-scenarios.out")
    r = figures("--check", root=tree)
    assert r.returncode == 1 and f"{IMAGES[0]}: figure differs from results/" in r.stdout.splitlines()
    assert png.read_bytes() == (ROOT / IMAGES[0]).read_bytes()  # --check writes nothing
    assert figures(root=tree).returncode == 0
    assert png.read_bytes() != (ROOT / IMAGES[0]).read_bytes() and figures("--check", root=tree).returncode == 0
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 800 and image.text["Source"].startswith(
            "adaptation-scenarios.out sha256:")
    png.unlink()
    assert figures("--check", root=tree).stdout == f"{IMAGES[0]}: figure differs from results/\n"


def _drop(path: Path) -> None:
    path.unlink()


def _last_line_not_json(path: Path) -> None:
    path.write_text(path.read_text().rstrip("\n")[:-1] + "\n")


def _json_edit(edit):
    def damage(path: Path) -> None:
        lines = path.read_text().rstrip("\n").split("\n")
        value = json.loads(lines[-1])
        edit(value)
        path.write_text("\n".join([*lines[:-1], json.dumps(value)]) + "\n")
    return damage


def _first_row(key: str, value):
    def edit(doc):
        doc[0][key] = value
    return edit


def _not_bit_exact(doc):
    doc["cortex-m0"]["bit_exact"] = False


def _no_float(doc):
    del doc["cortex-m4"]["float_sgd"]


def _tuned_float_differs(doc):
    doc["cortex-m4"]["float_tuned_same_as_float_sgd"] = False


def _a_method_dropped(doc):
    doc["rows"] = [r for r in doc["rows"] if (r["scenario"], r["method"]) != ("drift:digits", "float-mlp")]


DAMAGES = {
    "missing": ("defaults-accuracy.out", _drop, "results/defaults-accuracy.out: cannot read it"),
    "not JSON": ("bep-vs-qat-rnn.out", _last_line_not_json, "results/bep-vs-qat-rnn.out: line 7 is not JSON"),
    "accuracy above 1": ("defaults-accuracy.out", _json_edit(_first_row("scores", [0.9, 1.5, 0.9])),
                         "results/defaults-accuracy.out: scores is not a list of accuracies"),
    "negative seconds": ("defaults-accuracy.out", _json_edit(_first_row("seconds", -3.0)),
                         "results/defaults-accuracy.out: seconds is -3.0, not a duration"),
    "no QAT seconds": ("bep-vs-qat-rnn.out", _json_edit(lambda doc: doc["rows"][0]["qat"].pop("seconds")),
                       "results/bep-vs-qat-rnn.out: no qat.seconds"),
    "a held-out line not JSON": ("fresh-sets.out", _last_line_not_json,
                                 "results/fresh-sets.out: line 30 is not JSON"),
    "a row renamed": ("defaults-accuracy.out", _json_edit(_first_row("config", "prototypes 1024")),
                      "results/defaults-accuracy.out: no row 'prototypes 512'"),
    "not bit-exact": ("instructions-per-sample.json", _json_edit(_not_bit_exact),
                      "results/instructions-per-sample.json: cortex-m0 was not bit-exact with numpy"),
    "tuned float differs": ("instructions-per-sample.json", _json_edit(_tuned_float_differs),
                            ("results/instructions-per-sample.json: cortex-m4's tuned float step did not train "
                             "like float_sgd.c")),
    "a key missing": ("instructions-per-sample.json", _json_edit(_no_float),
                      "results/instructions-per-sample.json: no cortex-m4.float_sgd"),
    "a method dropped": ("adaptation-scenarios.out", _json_edit(_a_method_dropped),
                         "results/adaptation-scenarios.out: not every method of every scenario"),
    "log without rows": ("instructions-per-sample.log", lambda p: p.write_text("nothing measured\n"),
                         "results/instructions-per-sample.log: no row for cortex-m4, batch 100, E = 0.10"),
}


@pytest.mark.parametrize("case", DAMAGES)
def test_a_missing_or_damaged_result_is_one_line_and_nothing_is_written(tree: Path, case: str):
    name, damage, message = DAMAGES[case]
    # a hand edit the script would render over, so that writing anything would show
    readme = tree / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("| 95.35 % |", "| 95.77 % |", 1), encoding="utf-8")
    before = snapshot(tree)
    damage(tree / "results" / name)
    for args in ((), ("--check",)):
        r = figures(*args, root=tree)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"error: {message}") and r.stderr.count("\n") == 1, r.stderr
        assert snapshot(tree) == before


@pytest.mark.parametrize("case", ["unclosed", "unknown", "twice", "missing"])
def test_a_broken_region_is_one_line_and_nothing_is_written(tree: Path, case: str):
    readme = tree / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("| 95.35 % |", "| 95.77 % |", 1), encoding="utf-8")
    perf = tree / "docs/performance.md"  # the last file rendered: README.md would be written first
    text = perf.read_text(encoding="utf-8")
    start, end = "<!-- figures:cycles -->\n", "<!-- figures:floors -->"
    broken = {
        "unclosed": text.replace(start + region(text, "cycles") + "<!-- /figures -->\n", start),
        "unknown": text.replace(start, "<!-- figures:cycle -->\n"),
        "twice": text.replace(end, start + "<!-- /figures -->\n\n" + end),
        "missing": text.replace(start + region(text, "cycles") + "<!-- /figures -->\n", ""),
    }[case]
    assert broken != text
    perf.write_text(broken, encoding="utf-8")
    before = snapshot(tree)
    r = figures(root=tree)
    assert r.returncode == 2 and r.stderr.startswith("error: docs/performance.md: ") and r.stderr.count("\n") == 1
    assert snapshot(tree) == before


def test_every_results_file_is_indexed_and_every_one_cited_exists():
    results = ROOT / "results"
    stored = {p.relative_to(results).as_posix() for p in results.rglob("*") if p.is_file()} - {"README.md"}
    index = (results / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", index, re.M))
    assert stored == listed, f"not in results/README.md: {sorted(stored - listed)}; gone: {sorted(listed - stored)}"

    cited = re.compile(r"results/((?:[\w.-]+/)*[\w.-]+\.(?:out|jsonl|json|log))")
    sources = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "bep_mcu").rglob("*.py"),
               *(ROOT / "tests").glob("*.py"), ROOT / "bep_mcu/fw/README.md"]
    missing = {f"{src.relative_to(ROOT)}: results/{name}" for src in sources
               for name in cited.findall(src.read_text(encoding="utf-8")) if not (results / name).is_file()}
    assert not missing, sorted(missing)


def test_every_relative_link_of_the_readme_docs_and_results_index_resolves():
    pages = [ROOT / "README.md", ROOT / "results/README.md", *(ROOT / "docs").rglob("*.md")]
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages
              for target in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8"))
              if "://" not in target and not (page.parent / target).exists()]
    assert not broken, broken
