"""The deliberate breaks: each one breaks one promise and names the tests that must then fail.

The first four are the breaks that once passed the whole suite (a model saved with cloudpickle,
TF-IDF fitted on test rows, an unknown git commit, sentiment classes with open boundaries); the others
are one per row of the README's *Guarantees* table, in its order. ``fast`` breaks run in the suite
(``tests/test_mutations.py``); the others need the DVC pipeline, a browser, ``make`` or an index of
packages, and run with ``python tests/mutation/run.py --all`` (tens of minutes).

A break is a list of exact text edits; each ``old`` text must occur exactly once in its file, so a
break that no longer matches the code is an error, never a silent pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Break:
    name: str
    promise: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]
    fast: bool = True


T = "tests/"
TRACKING = "src/scrm/tracking.py"
PROMISES = T + "test_promises.py"

BREAKS: tuple[Break, ...] = (
    # ---- the four breaks that once passed every test ------------------------------------------
    Break("cloudpickle",
          "models are saved with skops, never pickle",
          (Edit(TRACKING, "input_example=example,",
                "input_example=example, serialization_format='cloudpickle',"),),
          (PROMISES + "::test_logged_model_is_a_skops_file_and_no_pickle",)),
    Break("tfidf_fitted_on_test_rows",
          "benchmark transformers are fitted on training rows only",
          (Edit("src/scrm/complaints/benchmark/select.py",
                "out_train = est.fit_transform(xtr, y_train)",
                "import pandas as _pd\n"
                "            out_train = est.fit(_pd.concat([xtr, xte])).transform(xtr)"),),
          (T + "test_leakage.py",)),
    Break("git_commit_unknown",
          "every run carries the run folder's git commit",
          (Edit(TRACKING, '    """``<sha>``, ``<sha>-dirty`` when tracked sources differ from it, '
                          'or ``unknown``."""\n',
                '    """``<sha>``, ``<sha>-dirty`` when tracked sources differ from it, '
                'or ``unknown``."""\n    return "unknown"\n'),),
          (PROMISES + "::test_git_commit_is_rev_parse_head_of_the_run_folder",)),
    Break("git_state_unknown",
          "every run carries the run folder's git commit (the tags' source)",
          (Edit(TRACKING, '    cwd = Path(root).resolve() if root else default_root()\n',
                '    cwd = Path(root).resolve() if root else default_root()\n'
                '    return "unknown", []\n'),),
          (PROMISES + "::test_every_registered_version_carries_commit_signature_and_data_hash",)),
    Break("sentiment_boundaries",
          "a score equal to a threshold belongs to the class the threshold names",
          (Edit("src/scrm/outcome/trajectories.py", ".when(expr <= negative_threshold)",
                ".when(expr < negative_threshold)"),
           Edit("src/scrm/outcome/trajectories.py", ".when(expr >= positive_threshold)",
                ".when(expr > positive_threshold)"),
           Edit("src/scrm/outcome/measure.py", ".when(sentiment >= positive)",
                ".when(sentiment > positive)")),
          (PROMISES + "::test_sentiment_classes_include_their_thresholds",)),
    # ---- one per row of the README's Guarantees table ----------------------------------------
    Break("quarantine_line_numbers_shifted",
          "G1 bad records are quarantined with their physical line number",
          (Edit("src/scrm/data/prepare.py", "    return df.with_columns(line_no=start, line_end=end,",
                "    return df.with_columns(line_no=start + 1, line_end=end,"),),
          (T + "test_bad_inputs.py::test_bad_records_are_quarantined_with_line_and_reason",
           T + "test_bad_inputs.py::test_fast_and_careful_readers_agree_on_the_real_sample")),
    Break("row_accounting_off_by_one",
          "G2 rows_in = rows_clean + rows_quarantined",
          (Edit("src/scrm/data/prepare.py", '"rows_quarantined": quarantine.height,',
                '"rows_quarantined": max(quarantine.height - 1, 0),'),
           Edit("src/scrm/data/prepare.py", "    if rows_in != rows_clean + rows_quarantined:",
                "    if False:")),
          (T + "test_prepare.py::test_quarantine_reasons_and_accounting",)),
    Break("user_error_shows_traceback",
          "G3 bad input exits non-zero with one message, no traceback",
          (Edit("src/scrm/cli.py", "            raise typer.Exit(exc.exit_code) from None",
                "            raise"),),
          (T + "test_bad_inputs.py::test_cli_error_names_file_and_line_without_traceback",)),
    Break("invalid_utf8_not_quarantined",
          "G4 records with invalid UTF-8 are quarantined, not fixed",
          (Edit("src/scrm/data/prepare.py",
                '.filter(pl.col("line_no").is_not_null() & (pl.col("line") <= pl.col("line_end")))',
                '.filter(pl.col("line_no").is_not_null() & (pl.col("line") <= pl.col("line_end"))'
                ' & pl.lit(False))'),),
          (T + "test_bad_inputs.py::test_invalid_utf8_record_is_kept_in_quarantine_not_altered_in_tweets",)),
    Break("non_atomic_writes",
          "G5 a killed fetch/prepare leaves no partial file",
          (Edit("src/scrm/io.py", "    tmp_path = _mkstemp_beside(target)\n",
                "    target.parent.mkdir(parents=True, exist_ok=True)\n    tmp_path = target\n"),
           Edit("src/scrm/io.py", "            tmps.append(_mkstemp_beside(target))",
                "            tmps.append(target)"),
           Edit("src/scrm/io.py", "        for target in reversed(paths):\n            with contextlib.suppress"
                "(FileNotFoundError):\n                target.unlink()\n",
                "")),
          (T + "test_interrupted.py::test_prepare_killed_mid_write_keeps_old_outputs",
           T + "test_interrupted.py::test_atomic_paths_error_keeps_old_and_removes_temps")),
    Break("thread_depth_off",
          "G6 depth(child) = depth(parent) + 1; every tweet in one thread",
          (Edit("src/scrm/data/threads.py", "thread_id=df[\"tweet_id\"].gather(top), depth=dist,",
                "thread_id=df[\"tweet_id\"].gather(top), depth=dist * 2,"),),
          (T + "test_prepare.py::test_hand_made_threads", T + "test_threads_property.py")),
    Break("sample_counts_wrong",
          "G7 the sample's counts equal an independent count",
          (Edit("src/scrm/data/threads.py", "branching_threads=pl.col(\"has_branch\").sum(),",
                "branching_threads=pl.col(\"has_branch\").sum() + 1,"),),
          (T + "test_prepare.py::test_sample_metrics_match_independent_count",)),
    Break("metrics_not_deterministic",
          "G8 same params, same bytes of metrics JSON",
          (Edit("src/scrm/io.py", "def write_json(target: Path | str, obj: Any) -> Path:\n",
                "def write_json(target: Path | str, obj: Any) -> Path:\n"
                "    import time as _t\n"
                "    obj = {**obj, 'written_at': _t.time()} if isinstance(obj, dict) else obj\n"),),
          (T + "test_identical_outputs.py::test_metrics_json_equal_the_recorded_ones",), fast=False),
    Break("repro_always_reruns",
          "G9 dvc repro twice reruns nothing",
          (Edit("dvc.yaml", "  report:\n", "  report:\n    always_changed: true\n"),),
          (T + "test_pipeline.py::test_second_repro_reruns_nothing",), fast=False),
    Break("seed_not_logged",
          "G10 every run carries params, seed, data hash and commit",
          (Edit(TRACKING, '            flat["seed"] = seed', '            pass'),),
          (T + "test_tracking.py::test_run_records_provenance_and_model",)),
    Break("credential_keys_logged",
          "G11 credentials never appear in MLflow",
          (Edit(TRACKING, "        if _SECRET_KEY.search(str(k)):\n            continue\n", ""),),
          (T + "test_tracking.py::test_run_records_provenance_and_model",)),
    Break("ui_binds_everywhere",
          "G12 the MLflow UI binds to 127.0.0.1",
          (Edit("src/scrm/cli.py", '= "127.0.0.1", port: int = 5000', '= "0.0.0.0", port: int = 5000'),),
          (T + "test_security.py::test_ui_help_shows_loopback_default",
           T + "test_security.py::test_ui_command_binds_loopback_and_warns_when_exposed")),
    Break("report_text_unescaped",
          "G13 tweet text in reports is escaped",
          (Edit("src/scrm/report/html.py", "    return html.escape(display(v), quote=True)",
                "    return display(v)"),),
          (T + "test_security.py::test_report_tables_escape_tweet_text",)),
    Break("foreign_model_uri_accepted",
          "G14 models are loaded only from this project's store",
          (Edit(TRACKING, 'if not (model_uri.startswith("models:/") or model_uri.startswith("runs:/")):',
                "if False:"),),
          (T + "test_tracking.py::test_load_model_refuses_foreign_locations",)),
    Break("model_store_follows_environment",
          "G14 models:/ URIs resolve against this project's store, whatever MLFLOW_TRACKING_URI says",
          (Edit(TRACKING, "    mlflow.set_tracking_uri(own)\n", "    own = tracking_uri(root)\n"
                "    mlflow.set_tracking_uri(own)\n"),),
          (PROMISES + "::test_load_model_resolves_against_the_projects_store_only",)),
    Break("yaml11_booleans",
          "G15 dvc exp run -S changes no value of params.yaml",
          (Edit("src/scrm/configbase.py", "    loader = _Yaml12Loader(", "    loader = yaml.SafeLoader("),),
          (T + "test_config.py::test_yaml_12_booleans_survive_an_unquoted_rewrite",)),
    Break("headline_copies_wrong_path",
          "G16 the flat headline is an exact copy of the stage metrics",
          (Edit("src/scrm/report/headline.py",
                '("answered_share", "response_time", "overall.answered_share"),',
                '("answered_share", "response_time", "overall.answered_share_ci_low"),'),),
          (T + "test_daily_loop.py::test_committed_headline_is_a_copy_of_the_committed_stage_metrics",
)),
    Break("committed_run_stale",
          "G16 the committed sample run is what dvc.lock records for the current code and params",
          (Edit("src/scrm/sentiment.py", '"tweets_scored": scored.height,',
                '"tweets_scored": scored.height + 1,'),),
          (T + "test_daily_loop.py::test_committed_outputs_are_what_dvc_lock_records_for_this_code_and_params",)),
    Break("plots_page_from_cdn",
          "G17 dvc plots show writes a page that loads nothing from the network",
          (Edit(".dvc/config", "[plots]\n    html_template = plots/offline.html\n", ""),),
          (T + "test_daily_loop.py::test_dvc_plots_show_writes_a_page_that_needs_no_network",)),
    Break("dvc_lock_makes_commit_dirty",
          "G18 -dirty only when tracked sources differ (not DVC's lock, params, metrics)",
          (Edit(TRACKING, 'RUN_RECORDS = ("dvc.lock", "params.yaml",', 'RUN_RECORDS = ("params.yaml",'),),
          (T + "test_tracking.py::test_changed_sources_ignores_the_pipelines_own_records",)),
    Break("version_without_run_id",
          "G19 registered versions carry stage, run, data hash and commit",
          (Edit(TRACKING, '    tags["run_id"] = run_id\n', ""),),
          (T + "test_tracking.py::test_registered_version_is_tagged_described_and_champion_loads",)),
    Break("progress_with_carriage_return",
          "G20 one line per step in logs, never a \\r",
          (Edit("src/scrm/progress.py", "        print(line, file=self.stream, flush=True)",
                "        print(line, end='\\r', file=self.stream, flush=True)"),),
          (T + "test_progress.py::test_log_gets_one_line_per_step_and_no_carriage_return",)),
    Break("lab_always_allows_root",
          "G21 make lab adds --allow-root only as root",
          (Edit("Makefile", 'ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)',
                "ALLOW_ROOT := --allow-root"),),
          (T + "test_daily_loop.py::test_make_lab_allows_root_only_as_root",)),
    Break("torch_cuda_build",
          "G21 the documented install is the CPU torch build, with no nvidia-* package",
          (Edit("constraints-cpu.txt", "torch==2.13.0+cpu", "torch==2.13.0"),),
          (T + "test_install.py",)),
    # ---- complaint detection and scrm classify (Guarantees rows of stage detect) ---------------
    Break("detector_trains_on_gold_ids",
          "the complaint detector never trains on a gold id",
          (Edit("src/scrm/complaints/detect.py",
                '    return (frame.filter((pl.col("split") == "train") & '
                '(pl.col("text_clean").str.len_chars() > 0))',
                '    return (frame.filter(pl.col("text_clean").str.len_chars() > 0)'),),
          (T + "test_detect.py::test_no_gold_id_enters_training",)),
    Break("detector_sees_brand_names",
          "the detector's features hold no brand name, handle or date",
          (Edit("src/scrm/complaints/detect.py",
                "    return sorted(set(rules.mask_words) | set(brand_words(handles)))",
                "    return []"),),
          (T + "test_detect.py::test_features_hold_no_brand_handle_or_date",)),
    Break("champion_chosen_on_test",
          "nothing is tuned on the sealed test: the champion is chosen on dev",
          (Edit("src/scrm/complaints/detect.py",
                '        best = champion(metrics["dev"]["scores"], detectors)',
                '        best = champion(metrics.get("test", metrics["dev"])["scores"], detectors)'),),
          (T + "test_detect.py::test_champion_is_chosen_on_dev_and_not_moved_by_the_test_labels",)),
    Break("classify_output_not_atomic",
          "scrm classify writes its output atomically",
          (Edit("src/scrm/complaints/classify.py",
                "        with atomic_path(dst) as tmp, tmp.open(\"wb\") as fh:",
                "        with dst.open(\"wb\") as fh:"),),
          (T + "test_classify.py::test_a_failure_midway_leaves_the_old_output",)),
    Break("unclosed_quote_swallows_records",
          "G22 an unclosed quote costs only its own line(s); the records after it are recovered",
          (Edit("src/scrm/data/records.py", "        if end > start:  # spans lines",
                "        if False:  # spans lines"),),
          (T + "test_bad_inputs.py::test_unclosed_quote_among_real_records_loses_only_that_record",
           T + "test_bad_inputs.py::test_runaway_quote_over_several_lines_is_one_record")),
    Break("no_openings_reason_dropped",
          "G23 a file whose every record is quarantined completes with no data and the reason",
          (Edit("src/scrm/data/prepare.py",
                "**(status.ok() if openings.height else status.no_data(why_no_openings(tweets, "
                "rows_in))),", "**status.ok(),"),),
          (T + "test_edge_inputs.py::test_every_record_quarantined_is_no_data_everywhere",)),
    Break("untyped_empty_frames",
          "G24 empty outputs have the columns and types of full ones",
          (Edit("src/scrm/response_time/service.py",
                "    return (typed_frame(rows, stat_dtype, columns)",
                "    return (pl.DataFrame(rows, infer_schema_length=None) if rows else "
                "pl.DataFrame(schema={'brand': pl.String, 'n_openings': pl.Int64})"),),
          (T + "test_edge_inputs.py::test_openings_never_answered_are_a_result_not_missing_data",)),
    Break("failed_stage_reads_as_not_run",
          "G25 the report says 'failed: see ...' for a stage that failed",
          (Edit("src/scrm/report/state.py", "    failure = status.failure(paths, stage)\n",
                "    failure = None\n"),),
          (T + "test_edge_inputs.py::test_a_failed_stage_leaves_a_note_the_report_shows_and_a_good_run_clears",)),
)
