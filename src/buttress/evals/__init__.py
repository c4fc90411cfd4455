"""Evals: datasets with slices and a sealed holdout, named scorers, LLM judges and their
calibration, experiments across variants, comparison with a baseline, a CI gate and reports.

Layout under a project::

    evals/NAME.yaml            a dataset (cases plus the suite's feature, scorers and gate)
    evals/NAME.jsonl           a dataset as one JSON case per line
    evals/NAME.holdout.yaml    NAME's sealed holdout split (run only with ``--holdout``)
    evals/holdout.lock         holdout hashes and use counts (commit it)
    .buttress/evals/runs/      one JSON file per run (``RunStore``)
    .buttress/evals/calibration/  one JSON file per calibrated judge

Owns: datasets, scorers, judges, calibration, experiments, statistics, comparison, reports.
Calls models only through ``AsyncClient``'s runtime. Must not import the CLI or the gateway.
"""
