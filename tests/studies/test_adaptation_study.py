"""The study script: it runs the pipelines' own namespaces, resumes where it stopped, summarises rows."""

import importlib.util
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "adaptation_study.py"
TINY = [
    "--pretrain-steps", "2", "--adapt-steps", "2", "--quiet", "--set", "study.jobs=1",
    "synthesis.generator.counts={source: 4, train: 3, val: 2, dev: 2}",
    "synthesis.generator.source_size=[64, 32]", "synthesis.generator.target_size=[64, 32]",
    "model.options.width=8", "evaluation.input_size=[64, 32]",
    "study.grids={adaptsegnet_multi: [{lambda_adv_main: 0.1, lambda_adv_aux: 0.02}, {lambda_adv_main: 1.0, lambda_adv_aux: 0.2}], "
    "advent: {follows: adaptsegnet_multi}, minent: [{lambda_ent_main: 0.1}, {lambda_ent_main: 1.0}]}",
    *(f"{ns}.adaptation.input_size={{source: [64, 32], target: [64, 32]}}"
      for ns in ("source_only", "adaptsegnet_multi", "minent", "advent")),
    *(f"{ns}.training.input_size=[64, 32]" for ns in ("source_pretraining", "oracle_finetune")),
]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("adaptation_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["adaptation_study"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_study_runs_namespaces_chooses_knobs_on_dev_and_resumes(study, tmp_path):
    out = tmp_path / "study"
    args = ["--out", str(out), "--seeds", "1", "2", "--regimes", "none", "strong",
            "--namespaces", "source_only", "adabn", "adaptsegnet_multi", "advent_minent", *TINY]
    study.main(args)
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2 * 4 * 2  # seeds × regimes × namespaces × (dev, val)
    assert set(rows["split"]) == {"dev", "val"} and set(rows["regime"]) == {"none", "strong"}
    selection = json.loads((out / "selection.json").read_text())
    for regime in ("none", "strong"):  # chosen per regime, on dev, with the selection seed
        chosen = selection[regime]["adaptsegnet_multi"]
        assert chosen["split"] == "dev" and len(chosen["dev_miou"]) == 2 and chosen["chosen"] in chosen["grid"]
    multi = rows[rows["method"] == "adaptsegnet_multi"]
    assert all(json.loads(k) in [{"lambda_adv_main": 0.1, "lambda_adv_aux": 0.02}, {"lambda_adv_main": 1.0, "lambda_adv_aux": 0.2}]
               for k in multi["knobs"])
    assert set(selection["none"]) == {"adaptsegnet_multi", "minent"}  # advent follows the multi-level choice
    # AdaBN starts from the same seed's source-only model (the pipeline's wiring), in each regime
    done = {p.parent.parent.name + "/" + p.parent.parent.parent.name: p for p in (out / "runs").rglob("done")}
    assert {"adabn/none", "adabn/strong", "source_pretraining/s1", "advent/none", "minent/strong"} <= set(done)
    ensemble = rows[(rows["method"] == "advent_minent") & (rows["split"] == "val")]
    assert len(ensemble) == 4 and ensemble["miou"].between(0, 100).all()
    assert (out / "summary.md").read_text().count("| none |") >= 1
    assert rows["machine"].nunique() == 1 and "torch" in rows["machine"].iloc[0]  # what the seeds pair within
    assert "threads" not in rows["machine"].iloc[0]  # trained at study.threads (1), whatever pytest's count
    assert rows["code"].nunique() == 1 and rows["code"].iloc[0] == study.this_code()  # the commit that trained them

    moved = tmp_path / "elsewhere" / "study"  # a study folder moves (or is copied to another machine) whole
    moved.parent.mkdir()
    out.rename(moved)
    args[args.index(str(out))] = str(moved)
    stamps = {p.relative_to(moved): p.stat().st_mtime_ns for p in (moved / "runs").rglob("done")}
    study.main(args)  # everything is there: nothing trains again, the rows are the same
    assert {p.relative_to(moved): p.stat().st_mtime_ns for p in (moved / "runs").rglob("done")} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(moved / "results.csv"), rows)


@pytest.mark.slow
def test_a_regime_with_knobs_from_uses_the_other_regimes_dev_choice(study, tmp_path):
    out = tmp_path / "study"
    regimes = ("study.regimes={none: {}, fog: {generator: {corruption: {kind: fog, severity: 3}}, "
               "knobs_from: none, seeds: [1]}}")
    study.main(["--out", str(out), "--regimes", "fog", "--namespaces", "source_only", "adaptsegnet_multi",
                *TINY, regimes])
    selection = json.loads((out / "selection.json").read_text())
    assert "fog" not in selection  # nothing chosen on the held-out shift's dev split
    chosen = selection["none"]["adaptsegnet_multi"]  # chosen on the shared layout, its data made for that
    assert len(chosen["dev_miou"]) == 2 and (out / "runs" / "s1" / "none" / "adaptsegnet_multi").is_dir()
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["regime"]) == {"fog"}
    multi = rows[rows["method"] == "adaptsegnet_multi"]
    assert [json.loads(k) for k in multi["knobs"]] == [chosen["chosen"]] * 2  # dev and val rows

    with pytest.raises(SystemExit, match="knobs_from: 'fog'"):
        study.main(["--out", str(out), *TINY, "study.regimes={none: {knobs_from: fog}, fog: {knobs_from: none}}"])


def test_summarise_only_writes_the_summary_of_existing_rows(study, tmp_path):
    rows = [
        {"seed": s, "regime": "none", "method": m, "split": split, "miou": base + s}
        for s in (1, 2, 3)
        for split in ("dev", "val")
        for m, base in (("source_only", 40.0), ("adaptsegnet_multi", 46.0))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    study.main(["--summarise-only", "--out", str(tmp_path)])
    assert "| none | 3 | 42.0 ± 1.0 |" in (tmp_path / "summary.md").read_text()
    assert "adaptsegnet_multi - source_only" in (tmp_path / "summary.json").read_text()
    assert (tmp_path / "summary.png").stat().st_size > 0 and not (tmp_path / "summary_budgets.png").exists()
    assert json.loads((tmp_path / "settings.json").read_text())["argv"][0] == "--summarise-only"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()  # nothing trained or generated


def test_rows_of_a_longer_budget_summarise_as_their_own_methods_against_their_own_bounds(study, tmp_path):
    rows = [
        {"seed": s, "regime": "none", "method": m, "split": "val", "adapt_steps": steps, "miou": base + s}
        for s in (1, 2, 3)
        for steps, shift in ((1000, 0), (4000, 10))
        for m, base in (("source_only", 40.0 + shift / 5), ("dacs", 46.0 + shift), ("oracle_finetune", 50.0 + shift))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    study.main(["--summarise-only", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())["regimes"]["none"]
    assert summary["gap_closed"]["dacs"] == pytest.approx(0.6)
    assert summary["gap_closed"]["dacs_4000_steps"] == pytest.approx(14 / 18)  # (56 − 42) / (60 − 42)
    assert summary["paired"]["dacs_4000_steps - source_only_4000_steps"]["mean"] == pytest.approx(14)
    assert (tmp_path / "summary_budgets.png").stat().st_size > 0  # mIoU and gap closed against steps
    study.check_results(tmp_path / "results.csv", 10, 10)  # one pretraining budget: a run may add to the file
    runner = study.Study.__new__(study.Study)  # record() alone: a 4000-step row replaces only its own budget's
    runner.out = tmp_path
    runner.params = {"model": {"num_classes": 19}, "study": {"adapt_steps": 1000}}
    runner.plan = study.Plan([], {}, 1, "dev", 0, {"pretrain": 10, "adapt": 4000})
    runner.knobs = lambda namespace, regime: {}
    runner.trained_by = lambda namespace, seed, regime: {"machine": "here", "code": "abc"}
    scores = {"protocols": {"19": {"miou": 61.0, "pixel_accuracy": 90.0, "iou": {}}}}
    runner.record("dacs", 1, study.Regime("none", {}, [1], ["dacs"]), "val", scores)
    runner.record("dacs", 1, study.Regime("none", {}, [1], ["dacs"]), "val", scores)
    written = pd.read_csv(tmp_path / "results.csv")
    assert len(written) == 18 and written.groupby("adapt_steps").size().to_dict() == {1000: 9, 4000: 9}
    assert written.query("adapt_steps == 4000 and method == 'dacs' and seed == 1")["miou"].tolist() == [61.0]
    one_budget = study.label_budgets(pd.DataFrame(rows[:9]).assign(adapt_steps=4000), 1000)
    assert set(one_budget["method"]) == {"source_only", "dacs", "oracle_finetune"}  # one budget: names unchanged
    longer = pd.DataFrame(rows).assign(adapt_steps=lambda r: r["adapt_steps"].replace({1000: 2000}))
    assert study.base_budget(longer, 1000) == 2000  # no default-budget rows: the 2000-step ones keep plain names
    assert set(study.label_budgets(longer, 1000)["method"]) >= {"dacs", "dacs_4000_steps"}
    old_and_longer = pd.DataFrame(rows).assign(adapt_steps=lambda r: r["adapt_steps"].replace({1000: None, 4000: 2000}))
    labelled = study.label_budgets(old_and_longer, 1000)  # rows without a budget had the default, as row_key says
    assert study.base_budget(old_and_longer, 1000) == 1000
    assert set(labelled["method"]) == {"source_only", "dacs", "oracle_finetune", "source_only_2000_steps",
                                       "dacs_2000_steps", "oracle_finetune_2000_steps"}


def test_summarise_only_without_results_names_the_file(study, tmp_path):
    with pytest.raises(SystemExit, match="results.csv does not exist"):
        study.main(["--summarise-only", "--out", str(tmp_path / "empty")])


@pytest.mark.slow
def test_study_on_a_synthia_layout_source_reports_16_and_13_classes(study, tmp_path):
    from adaptseg import tracking

    tracking.configure("another_env", {})  # what a Kedro session of this process may leave behind
    out = tmp_path / "synthia"
    study.main(["--dataset", "synthia", "--out", str(out), "--seeds", "1", "--regimes", "none",
                "--namespaces", "source_only", "--no-selection", *TINY])
    rows = pd.read_csv(out / "results.csv")
    assert {"miou", "miou16", "miou13"} <= set(rows.columns) and len(rows) == 2
    assert (out / "summary_16.md").read_text().startswith("# Method study (target `val` mIoU (16 classes)")
    assert (out / "summary_13.md").is_file()
    data = next((out / "data").iterdir())
    assert (data / "01_raw/synthetic/synthia/GT/LABELS").is_dir()  # the generator wrote the SYNTHIA layout
    assert set(pd.read_csv(data / "02_intermediate/source_manifest.csv")["kind"]) == {"synthia"}
    import mlflow

    runs = mlflow.search_runs(experiment_names=["adaptation_study"], output_format="list")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # the model's own run, under the study's
    assert children and all(r.info.run_name.endswith("· local") for r in children)  # the study's env, no other
    assert not any(r.outputs.model_outputs for r in children)  # and no model logged, whatever was configured


def test_rows_name_the_machine_the_engine_trains_on_not_the_fastest_one_present(study, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    assert study.this_machine("auto").startswith("Some GPU, torch ")
    assert "Some GPU" not in study.this_machine("cpu")  # a study pinned to the CPU on a GPU machine


def test_a_cpu_row_names_a_thread_count_other_than_one_since_the_count_changes_the_model(study):
    import torch

    before = torch.get_num_threads()
    with study.torch_threads(2):
        assert study.this_machine("cpu").endswith(", 2 threads")
    with study.torch_threads(1):
        assert "threads" not in study.this_machine("cpu")
    assert torch.get_num_threads() == before  # given back to the caller


def test_one_results_file_holds_one_pretraining_budget(study, tmp_path):
    rows = [{"seed": 1, "regime": "none", "method": m, "split": "val", "adapt_steps": 1000, "miou": 40.0}
            for m in ("source_only", "dacs")]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)  # before rows said their pretraining
    study.check_results(tmp_path / "results.csv", 50, 50)
    with pytest.raises(SystemExit, match=r"results.csv: rows of source pretraining for \[50, 80\] steps"):
        study.check_results(tmp_path / "results.csv", 80, 50)
    pd.DataFrame([rows[0] | {"pretrain_steps": 50}, rows[1] | {"pretrain_steps": 80}]).to_csv(
        tmp_path / "results.csv", index=False
    )  # two folders concatenated by hand
    with pytest.raises(SystemExit, match="one pretraining budget"):
        study.main(["--summarise-only", "--out", str(tmp_path)])
    assert not (tmp_path / "summary.md").exists()


def test_processes_sharing_an_out_folder_merge_their_rows_instead_of_overwriting_them(study, tmp_path):
    scores = {"protocols": {"19": {"miou": 50.0, "pixel_accuracy": 90.0, "iou": {}}}}

    def process(seed: int):
        runner = study.Study.__new__(study.Study)  # two processes, each with its own Study
        runner.out = tmp_path
        runner.params = {"model": {"num_classes": 19}, "study": {"adapt_steps": 1000}}
        runner.plan = study.Plan([], {}, 1, "dev", 0, {"pretrain": 10, "adapt": 1000})
        runner.knobs = lambda namespace, regime: {}
        runner.trained_by = lambda namespace, seed, regime: {"machine": "here", "code": "abc"}
        return runner, study.Regime("none", {}, [seed], ["dacs"])

    (first, regime1), (second, regime2) = process(1), process(2)  # both started before either wrote
    first.record("dacs", 1, regime1, "val", scores)
    second.record("dacs", 2, regime2, "val", scores)
    first.record("source_only", 1, regime1, "val", scores)
    written = pd.read_csv(tmp_path / "results.csv")
    assert sorted(zip(written["seed"], written["method"], strict=True)) == [(1, "dacs"), (1, "source_only"), (2, "dacs")]
    old = written.drop(columns=["adapt_steps"]).assign(seed=3)  # a row from before budgets were recorded
    pd.concat([written, old]).to_csv(tmp_path / "results.csv", index=False)
    second.record("dacs", 3, regime2, "val", scores)  # replaces it: no adapt_steps counts as the default budget
    assert len(pd.read_csv(tmp_path / "results.csv").query("seed == 3 and method == 'dacs'")) == 1


def test_a_model_another_process_is_training_is_waited_for_and_not_trained_again(study, tmp_path):
    import threading

    runner = study.Study.__new__(study.Study)
    runner.ensembles, runner.knobs, runner.start_of = {}, (lambda namespace, regime: {}), (lambda namespace: None)
    runner.scope = lambda namespace, seed, regime, knobs=None: tmp_path / "runs" / namespace
    trained = []

    def slow_training(namespace, seed, regime, knobs, scope):
        trained.append(namespace)
        time.sleep(0.3)
        scope.mkdir(parents=True)
        (scope / "done").write_text("{}")

    runner._train = slow_training
    regime = study.Regime("none", {}, [1], ["dacs"])
    other = threading.Thread(target=runner.train, args=("dacs", 1, regime))  # flock is per open file: as a process
    other.start()
    time.sleep(0.05)
    assert runner.train("dacs", 1, regime) == tmp_path / "runs" / "dacs"
    other.join()
    assert trained == ["dacs"] and (tmp_path / "runs" / "dacs" / "done").is_file()


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_tracking_store_both_open_it(tmp_path):
    import subprocess

    start = time.time() + 8  # both imports usually done by then: the two opens race as on a new machine
    opener = (
        "import importlib.util, sys, time; from pathlib import Path; import mlflow\n"
        f"spec = importlib.util.spec_from_file_location('adaptation_study', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['adaptation_study'] = module\n"
        "spec.loader.exec_module(module)\n"
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        f"module.open_tracking('sqlite:///{tmp_path}/mlflow.db', 'adaptation_study', Path({str(tmp_path)!r}))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", opener], stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    errors = [p.communicate(timeout=180)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors


def test_processes_sharing_an_out_folder_take_the_models_no_other_is_making(study, tmp_path):
    """Two runners of the same study at once (threads: flock is per open file, as between processes): each model
    is trained once, both train at the same time (waiting on each other, the same order would never overlap),
    and each records every row."""
    import threading

    trained: dict[str, str] = {}
    active, peak, counting = [0], [0], threading.Lock()
    regime = study.Regime("none", {}, [1, 2, 3], ["source_only", "dacs"])

    def runner() -> study.Study:
        one = study.Study.__new__(study.Study)
        one.ensembles, one.plan = {}, study.Plan([regime], {}, 1, "dev", 0, {"pretrain": 10, "adapt": 1000})
        one.knobs, one.prepare_data = (lambda namespace, regime: {}), (lambda regime: None)
        one.start_of = lambda namespace: "source_pretraining" if namespace != "source_pretraining" else None
        one.scope = lambda namespace, seed, regime, knobs=None: tmp_path / "runs" / f"s{seed}" / namespace
        one.recorded = []
        one.record = lambda namespace, seed, regime, split, metrics: one.recorded.append((namespace, seed, split))

        def slow_training(namespace, seed, regime, knobs, scope):
            trained[f"{namespace} s{seed}"] = threading.current_thread().name
            with counting:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.2)
            with counting:
                active[0] -= 1
            study.write_atomically(scope / "done", "{}")

        def evaluation(namespace, seed, regime, split, scope, root):
            study.write_atomically(root / "metrics.json", "{}")  # as _evaluate: the other reads it without the lock

        one._train, one._evaluate = slow_training, evaluation
        return one

    runners = [runner(), runner()]
    threads = [threading.Thread(target=r.study, name=f"p{k}") for k, r in enumerate(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trained) == 9  # 3 pretrainings, 6 models: each once
    assert set(trained.values()) == {"p0", "p1"} and peak[0] == 2  # the work was shared, not waited through
    for one in runners:  # a row recorded again after a deferred retry replaces itself in results.csv
        assert set(one.recorded) == {(n, s, split) for n in ("source_only", "dacs") for s in (1, 2, 3)
                                     for split in ("dev", "val")}


def test_jobs_start_more_processes_of_the_same_study_and_name_the_log_of_one_that_failed(study, tmp_path, monkeypatch):
    import subprocess

    started = []

    class Child:
        def __init__(self, command, stdout, stderr):
            started.append(command)
            self.code = 0 if len(started) == 1 else 3

        def wait(self):
            return self.code

        def terminate(self):
            pass

    monkeypatch.setattr(subprocess, "Popen", Child)
    with pytest.raises(SystemExit, match="worker-2.log"):
        with study.workers(["--out", str(tmp_path), "--jobs", "3", "--seeds", "1"], tmp_path, 3):
            pass
    assert len(started) == 2  # the parent's --jobs is not passed on
    assert all(c[2:] == ["--out", str(tmp_path), "--seeds", "1", "--jobs", "1", "--quiet"] for c in started)
    with study.workers(["--out", str(tmp_path)], tmp_path, 1):  # one job: nothing started
        pass
    assert len(started) == 2
