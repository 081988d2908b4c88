"""The written report: files, JSON Schema, HTML content, figures and safe rewriting."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ictcf.errors import ConflictError, InputError
from ictcf.evaluation import report as report_module
from ictcf.evaluation.metrics import UndefinedMetricWarning
from ictcf.evaluation.report import (
    PAPER_CF_RESULTS,
    build_metrics_document,
    format_headline_table,
    format_summary_cell,
    metrics_schema,
    validate_metrics_document,
    write_report,
)
from ictcf.evaluation.summary import TASK_CLASS_NAMES, EvaluationSummary, evaluate_predictions
from tests.evaluation.synthetic import make_predictions

MORBIDITY = list(TASK_CLASS_NAMES["morbidity"])
MORTALITY = list(TASK_CLASS_NAMES["mortality"])
CV_DATA = "synthetic cohort A, 100 patients"
CV_SPLIT = "stratified 5-fold CV by patient, 3 repeats, seed 0"
LOHO_DATA = "synthetic cohort B, 2 hospitals"
LOHO_SPLIT = "leave one hospital out"


@pytest.fixture(scope="module")
def summaries() -> list[EvaluationSummary]:
    morbidity = evaluate_predictions(
        make_predictions("morbidity", n_repeats=3, n_folds=5, n_patients=100, seed=1),
        task="morbidity",
        class_names=MORBIDITY,
        description={"data": CV_DATA, "split": CV_SPLIT},
    )
    mortality = evaluate_predictions(
        make_predictions("mortality", n_repeats=3, n_folds=5, n_patients=100, seed=2),
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description={"data": CV_DATA, "split": CV_SPLIT},
    )
    loho_frame = make_predictions(
        "mortality", n_repeats=1, n_folds=2, n_patients=60, seed=3, evaluation="loho"
    )
    loho_frame["fold_label"] = np.where(loho_frame["fold"] == 0, "test=Liyuan", "test=Union")
    loho = evaluate_predictions(
        loho_frame,
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description={"data": LOHO_DATA, "split": LOHO_SPLIT},
    )
    return [morbidity, mortality, loho]


def run_info() -> dict[str, Any]:
    return {
        "run_id": "run-0001",
        "created": dt.datetime(2026, 12, 4, 20, 0, tzinfo=dt.UTC),
        "data": {
            "file": "patient_cohort1.txt",
            "sha256": "0" * 64,
            "published": True,
            "patients_per_cohort": {"cohort1": 100},
        },
        "split": {"folds": 5, "repeats": 3, "seed": 0},
        "model": {"name": "cf-mlp", "class_weight": "balanced", "hidden_units": [64, 32]},
        "normalisation_policy": {"scaling": "z-score fitted on each training fold"},
        "software": {"torch": "2.13.0"},
        "durations_s": {"cross_validation": 12.5},
        "output": Path("/tmp/somewhere"),
        "notes": ["synthetic predictions for the report test"],
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, summaries: list[EvaluationSummary]) -> Path:
    return write_report(tmp_path_factory.mktemp("report") / "out", summaries, run_info())


def test_write_report_creates_all_files(written: Path) -> None:
    folder = written.parent

    assert written.name == "index.html"
    for name in ("metrics.json", "index.html", "report.md"):
        assert (folder / name).is_file()
    for key in ("morbidity_cv", "mortality_cv", "mortality_loho"):
        for table in ("summary", "per_repeat", "per_fold", "confusion", "roc"):
            assert (folder / "tables" / f"{key}_{table}.csv").is_file()
        for figure in ("roc", "confusion"):
            path = folder / "figures" / f"{key}_{figure}.png"
            with Image.open(path) as image:
                assert image.format == "PNG"
                assert image.width > 300
    assert not list(folder.parent.glob(".out.partial-*"))


def test_metrics_json_validates_against_schema(written: Path) -> None:
    document = json.loads((written.parent / "metrics.json").read_text(encoding="utf-8"))
    schema = json.loads(
        (Path(report_module.__file__).parent / "metrics.schema.json").read_text("utf-8")
    )

    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    validate_metrics_document(document)
    assert document["schema_version"] == 1
    assert document["run_info"]["created"] == "2026-12-04T20:00:00+00:00"
    assert document["run_info"]["output"] == "/tmp/somewhere"
    assert [entry["evaluation"] for entry in document["evaluations"]] == ["cv", "cv", "loho"]
    assert document["evaluations"][0]["files"]["roc_png"] == "figures/morbidity_cv_roc.png"


def test_metrics_json_numbers_equal_summaries(
    written: Path, summaries: list[EvaluationSummary]
) -> None:
    document = json.loads((written.parent / "metrics.json").read_text(encoding="utf-8"))

    for entry, summary in zip(document["evaluations"], summaries, strict=True):
        for row in entry["summary"]:
            expected = summary.summary_row(row["class"], row["metric"])
            assert expected is not None
            assert row["mean"] == pytest.approx(expected["mean"])
            assert row["n_undefined"] == expected["n_undefined"]


def test_summary_csv_names_data_and_split(written: Path) -> None:
    table = pd.read_csv(written.parent / "tables" / "mortality_loho_summary.csv")

    assert set(table["data"]) == {LOHO_DATA}
    assert set(table["split"]) == {LOHO_SPLIT}
    assert set(table["n_repeats"]) == {1}
    assert set(table["over"]) == {"hospitals"}


def test_html_shows_our_numbers_beside_paper(
    written: Path, summaries: list[EvaluationSummary]
) -> None:
    html = written.read_text(encoding="utf-8")

    for summary in summaries:
        for class_name in summary.reported_classes:
            row = summary.summary_row(class_name, "auc")
            assert row is not None
            assert format_summary_cell(row, "auc") in html
    for result in PAPER_CF_RESULTS:
        assert f"{result.value:.3f}" in html
    assert "as reported by the paper" in html


def test_html_captions_name_provenance(written: Path) -> None:
    html = written.read_text(encoding="utf-8")

    captions = re.findall(r"<caption>(.*?)</caption>", html, flags=re.DOTALL)
    # One headline table per task + per section (metrics, confusion) + the per-fold table of
    # the single-repeat run.
    assert len(captions) == 2 + 3 * 2 + 1
    for caption in captions[2:]:
        assert "data: " in caption
        assert "split: " in caption
        assert re.search(r"\d+ repeats?", caption)
    headline = html.split('id="headline"')[1].split("</section>")[0]
    assert CV_DATA in headline
    assert LOHO_SPLIT in headline
    assert "test=Liyuan" in html


def test_html_explains_how_to_read(written: Path) -> None:
    html = written.read_text(encoding="utf-8")
    section = html.split('id="how-to-read"')[1].split("</section>")[0]

    assert "How to read these numbers" in html
    assert "argmax" in section
    assert "predicted &#39;deceased&#39; when its probability is &gt;= 0.5" in section
    assert "undefined (n of N repeats)" in section
    assert "2.5th and 97.5th percentiles" in section
    assert "&#34;class_weight&#34;: &#34;balanced&#34;" in section


def test_html_shows_run_information(written: Path) -> None:
    html = written.read_text(encoding="utf-8")
    section = html.split('id="run"')[1]

    assert "not recorded" not in section
    assert "z-score fitted on each training fold" in section
    assert "&#34;cross_validation&#34;: 12.5" in section
    assert "/tmp/somewhere" in section
    assert "synthetic predictions for the report test" in html


def test_html_is_self_contained(written: Path) -> None:
    html = written.read_text(encoding="utf-8")

    assert "<script" not in html
    assert "<link" not in html
    assert "http://" not in html
    assert "https://" not in html
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 6
    for source in sources:
        assert not source.startswith("/")
        assert (written.parent / source).is_file()
    for link in re.findall(r'href="([^"#]+)"', html):
        assert (written.parent / link).is_file()


def test_markdown_report_has_tables(written: Path) -> None:
    text = (written.parent / "report.md").read_text(encoding="utf-8")

    assert text.startswith("# ictcf evaluation report")
    assert "| Evaluation | Model | Class |" in text
    assert "### Morbidity" in text
    assert "### Mortality" in text
    assert (
        "![ROC curves of Mortality: leave-one-hospital-out, HUST-19 CF network (the paper's "
        "model)](figures/mortality_loho_roc.png)" in text
    )
    assert "| test=Union | deceased |" in text


def test_html_escapes_untrusted_text(tmp_path: Path) -> None:
    payload = "<img src=x onerror=alert(1)>"
    summary = evaluate_predictions(
        make_predictions("mortality", n_repeats=1, n_patients=40),
        task="mortality",
        class_names=MORTALITY,
        positive_class="deceased",
        description={"data": payload, "split": "5-fold"},
    )
    info = {**run_info(), "notes": [payload], "run_id": payload}

    index = write_report(tmp_path / "report", [summary], info)

    html = index.read_text(encoding="utf-8")
    assert payload not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    # A backslash before "<" makes Markdown renderers show the bracket as text, not as a tag.
    assert re.search(r"(?<!\\)<img", markdown) is None
    assert "\\<img src=x onerror=alert(1)>" in markdown


def test_report_with_absent_class_says_auc_undefined(tmp_path: Path) -> None:
    # Labels [1, 2] with 3-class softmax rows: class 0 is absent from every fold.
    frame = make_predictions(n_repeats=2, n_folds=2, n_patients=20)
    frame["y_true"] = np.where(frame["y_true"] == 0, 1, frame["y_true"])
    with pytest.warns(UndefinedMetricWarning):
        summary = evaluate_predictions(
            frame, task="morbidity", class_names=MORBIDITY, description={"data": "d", "split": "s"}
        )

    index = write_report(tmp_path / "report", [summary], run_info())

    html = index.read_text(encoding="utf-8")
    assert "undefined (2 of 2 repeats)" in html
    assert "AUC undefined for control in 2 of 2 repeats" in html
    assert "AUC undefined for type_i" not in html
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "- AUC undefined for control in 2 of 2 repeats" in markdown
    document = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert document["evaluations"][0]["pooled_auc"]["control"] is None
    assert document["evaluations"][0]["roc"]["control"] == {"fpr": [], "tpr": [], "threshold": []}
    assert "undefined (2 of 2 repeats)" in format_headline_table([summary])


def test_report_binary_all_positive_does_not_crash(tmp_path: Path) -> None:
    frame = make_predictions(
        "mortality", n_repeats=1, n_folds=2, n_patients=10, evaluation="independent"
    )
    frame["y_true"] = 1
    with pytest.warns(UndefinedMetricWarning):
        summary = evaluate_predictions(
            frame,
            task="mortality",
            class_names=MORTALITY,
            positive_class="deceased",
            description={"data": "d", "split": "s"},
        )

    index = write_report(tmp_path / "report", [summary], {})

    html = index.read_text(encoding="utf-8")
    assert "undefined (2 of 2 folds)" in html
    assert "not recorded" in html


def test_headline_table_lists_paper_and_provenance(summaries: list[EvaluationSummary]) -> None:
    text = format_headline_table(summaries)
    lines = text.splitlines()

    assert lines[0].split() == [
        "Task",
        "Evaluation",
        "Class",
        "network",
        "AUC",
        "(95%",
        "interval)",
        "Interval",
        "over",
        "Paper",
        "AUC",
        "(as",
        "reported)",
    ]
    control = next(line for line in lines if " control " in line)
    assert control.rstrip().endswith("0.882")
    deceased_cv = next(line for line in lines if "cross-validation" in line and "deceased" in line)
    assert deceased_cv.rstrip().endswith("0.822")
    loho = next(line for line in lines if "leave-one-hospital-out" in line and "deceased" in line)
    assert loho.rstrip().endswith("—")
    assert f"data: {LOHO_DATA}; split: {LOHO_SPLIT}; 1 repeat" in text


def test_paper_cf_results_are_table_2_values() -> None:
    values = {(result.task, result.class_name): result.value for result in PAPER_CF_RESULTS}

    assert values == {
        ("morbidity", "control"): 0.882,
        ("morbidity", "type_i"): 0.856,
        ("morbidity", "type_ii"): 0.879,
        ("mortality", "deceased"): 0.822,
    }
    assert all("as reported by the paper" in result.source for result in PAPER_CF_RESULTS)


def test_rewrite_replaces_report_and_keeps_other_files(
    tmp_path: Path, summaries: list[EvaluationSummary]
) -> None:
    folder = tmp_path / "report"
    write_report(folder, summaries, run_info())
    (folder / "my notes.txt").write_text("keep me", encoding="utf-8")

    write_report(folder, summaries[:1], run_info())

    assert (folder / "my notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not (folder / "figures" / "mortality_loho_roc.png").exists()
    document = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert len(document["evaluations"]) == 1


def test_foreign_folder_is_not_overwritten(
    tmp_path: Path, summaries: list[EvaluationSummary]
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"data")

    with pytest.raises(ConflictError, match="is not empty and contains no earlier report"):
        write_report(folder, summaries, run_info())

    assert sorted(path.name for path in folder.iterdir()) == ["thesis.docx"]


def test_failed_write_leaves_nothing(
    tmp_path: Path, summaries: list[EvaluationSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "draw_roc_figure", fail)

    with pytest.raises(RuntimeError, match="disk full"):
        write_report(tmp_path / "report", summaries, run_info())

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"model": object()}, r"run_info\['model'\] is a object, which cannot be written to JSON"),
        ({"notes": "one note"}, r"run_info\['notes'\] must be a list of strings"),
        ({"data": {1: "x"}}, r"run_info\['data'\] has the key 1"),
    ],
)
def test_invalid_run_info_is_rejected_before_writing(
    tmp_path: Path, summaries: list[EvaluationSummary], info: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        write_report(tmp_path / "report", summaries, info)

    assert not (tmp_path / "report").exists()


def test_duplicate_or_missing_summaries_are_rejected(
    tmp_path: Path, summaries: list[EvaluationSummary]
) -> None:
    with pytest.raises(InputError, match="no evaluation summaries"):
        write_report(tmp_path / "a", [], run_info())
    with pytest.raises(
        InputError, match="the morbidity cv evaluation of the network model is given twice"
    ):
        write_report(tmp_path / "b", [summaries[0], summaries[0]], run_info())


def test_validate_rejects_altered_documents(summaries: list[EvaluationSummary]) -> None:
    document = build_metrics_document(summaries, run_info())
    validate_metrics_document(document)

    as_text = json.loads(json.dumps(document))
    as_text["evaluations"][0]["summary"][0]["mean"] = "0.5"
    with pytest.raises(
        InputError, match=r"invalid at \$\['evaluations'\]\[0\]\['summary'\]\[0\]\['mean'\]"
    ):
        validate_metrics_document(as_text)

    missing = json.loads(json.dumps(document))
    del missing["evaluations"][0]["description"]["split"]
    with pytest.raises(InputError, match="'split' is a required property"):
        validate_metrics_document(missing)

    out_of_range = json.loads(json.dumps(document))
    out_of_range["evaluations"][0]["per_repeat"][0]["auc"] = 1.5
    with pytest.raises(InputError, match=r"1\.5 is greater than the maximum of 1"):
        validate_metrics_document(out_of_range)


def test_schema_requires_every_summary_field() -> None:
    schema = metrics_schema()

    required = schema["$defs"]["summary_row"]["required"]
    assert required == [
        "class",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_defined",
        "n_undefined",
        "over",
        "interval_method",
    ]


def test_to_dict_matches_schema_without_report(summaries: list[EvaluationSummary]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = build_metrics_document(summaries, {"run_id": "x"})

    validate_metrics_document(document)
    assert "files" not in document["evaluations"][0]


def test_format_summary_cell_cases() -> None:
    def row(
        mean: float, low: float, high: float, n_defined: int, n_undefined: int
    ) -> dict[str, Any]:
        return {
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "n_defined": n_defined,
            "n_undefined": n_undefined,
            "over": "repeats",
        }

    nan = float("nan")
    assert (
        format_summary_cell(row(0.8123, 0.79, 0.833, 10, 0), "sensitivity") == "81.2% (79.0%–83.3%)"
    )
    assert format_summary_cell(row(0.812, 0.79, 0.833, 8, 2), "auc") == (
        "0.812 (0.790–0.833); undefined in 2 of 10 repeats"
    )
    assert format_summary_cell(row(0.25, -0.1, 0.6, 10, 0), "mcc") == "0.250 (-0.100 to 0.600)"
    assert format_summary_cell(row(nan, nan, nan, 0, 10), "auc") == "undefined (10 of 10 repeats)"
    assert format_summary_cell(row(0.8, nan, nan, 1, 0), "auc") == "0.800 (n/a: 1 repeat)"


@pytest.fixture(scope="module")
def two_models() -> list[EvaluationSummary]:
    summaries = []
    for model, seed in (("network", 1), ("gradient-boosting", 5)):
        for task, classes, positive in (
            ("morbidity", MORBIDITY, None),
            ("mortality", MORTALITY, "deceased"),
        ):
            frame = make_predictions(task, n_repeats=3, n_folds=5, n_patients=100, seed=seed)
            summaries.append(
                evaluate_predictions(
                    frame.assign(model=model),
                    task=task,
                    class_names=classes,
                    positive_class=positive,
                    description={"data": CV_DATA, "split": CV_SPLIT},
                )
            )
    return summaries


@pytest.fixture(scope="module")
def two_model_report(
    tmp_path_factory: pytest.TempPathFactory, two_models: list[EvaluationSummary]
) -> Path:
    return write_report(tmp_path_factory.mktemp("models") / "out", two_models, run_info())


def test_report_shows_both_models(
    two_model_report: Path, two_models: list[EvaluationSummary]
) -> None:
    folder = two_model_report.parent
    html = two_model_report.read_text(encoding="utf-8")
    headline = html.split('id="headline"')[1].split("</section>")[0]
    assert headline.count("<table>") == 2
    assert "HUST-19 CF network (the paper&#39;s model)" in headline
    assert "gradient boosting (comparison model)" in headline

    morbidity_table = headline.split("<h3>Morbidity</h3>")[1].split("</table>")[0]
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", morbidity_table, flags=re.DOTALL)
    assert len(rows) == 6
    network_rows = [row for row in rows if "<td>network</td>" in row]
    boosting_rows = [row for row in rows if "<td>gradient-boosting</td>" in row]
    assert len(network_rows) == len(boosting_rows) == 3
    assert '<td class="number paper">0.882</td>' in network_rows[0]
    for row in boosting_rows:
        assert '<td class="number paper">—</td>' in row

    for summary in two_models:
        for class_name in summary.reported_classes:
            row = summary.summary_row(class_name, "auc")
            assert row is not None
            assert format_summary_cell(row, "auc") in headline
    for name in (
        "morbidity_cv_roc.png",
        "morbidity_cv_gradient-boosting_roc.png",
        "mortality_cv_gradient-boosting_confusion.png",
    ):
        assert (folder / "figures" / name).is_file()
    assert "the paper column stays empty because the paper did not evaluate this model" in html


def test_markdown_headline_has_model_rows(two_model_report: Path) -> None:
    text = (two_model_report.parent / "report.md").read_text(encoding="utf-8")
    mortality = text.split("### Mortality")[1].split("\n\n")[1]
    lines = [line for line in mortality.splitlines() if line.startswith("| cross-validation")]
    assert [line.split(" | ")[1] for line in lines] == ["network", "gradient-boosting"]
    assert lines[0].split(" | ")[5] == "0.822"
    assert lines[1].split(" | ")[5] == "—"


def test_metrics_json_records_models(two_model_report: Path) -> None:
    document = json.loads((two_model_report.parent / "metrics.json").read_text())
    assert [item["model"] for item in document["evaluations"]] == [
        "network",
        "network",
        "gradient-boosting",
        "gradient-boosting",
    ]
    files = document["evaluations"][2]["files"]
    assert files["roc_png"] == "figures/morbidity_cv_gradient-boosting_roc.png"
    summary_csv = pd.read_csv(two_model_report.parent / files["summary_csv"])
    assert set(summary_csv["model"]) == {"gradient-boosting"}
    validate_metrics_document(document)
    del document["evaluations"][0]["model"]
    with pytest.raises(InputError, match="'model' is a required property"):
        validate_metrics_document(document)


def test_headline_table_puts_models_side_by_side(two_models: list[EvaluationSummary]) -> None:
    text = format_headline_table(two_models)
    lines = text.splitlines()
    header = lines[0]
    assert header.index("network AUC") < header.index("gradient-boosting AUC")
    assert header.rstrip().endswith("Paper AUC (as reported)")
    control = next(line for line in lines if " control " in line)
    network_auc = two_models[0].summary_row("control", "auc")
    boosting_auc = two_models[2].summary_row("control", "auc")
    assert network_auc is not None
    assert boosting_auc is not None
    assert format_summary_cell(network_auc, "auc") in control
    assert format_summary_cell(boosting_auc, "auc") in control
    assert control.rstrip().endswith("0.882")
    assert len([line for line in lines if " deceased " in line]) == 1
    assert any("network = HUST-19 CF network (the paper's model)" in line for line in lines)


def test_loho_interval_absent_in_files(written: Path) -> None:
    folder = written.parent
    document = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    loho = next(entry for entry in document["evaluations"] if entry["evaluation"] == "loho")
    auc = next(
        row for row in loho["summary"] if row["metric"] == "auc" and row["class"] == "deceased"
    )

    assert auc["ci_low"] is None and auc["ci_high"] is None
    assert auc["interval_method"] == "none"
    assert auc["n_defined"] == 2 and auc["over"] == "hospitals"
    assert "n/a: 2 hospitals" in written.read_text(encoding="utf-8")
    assert "n/a: 2 hospitals" in (folder / "report.md").read_text(encoding="utf-8")
