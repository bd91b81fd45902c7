"""Architecture search over recurrent cells and long-range feedback (Nayebi et al. 2018, §3).

    python -m tpu_convrnn.search run --space=gin/search/small.gin --study_dir=runs/small \
        --n_trials=12 --workers=2
    python -m tpu_convrnn.search report --space=gin/search/small.gin --study_dir=runs/small

Modules: ``config`` (the space and study settings, as plain data), ``sample`` (parameters and
the gin bindings they become), ``references`` (the released cells as enqueued points),
``trial_gin`` (trial gin files; build-time checks, parameters, FLOPs, hashes), ``study``
(storage, sampler, pruner, data split), ``worker`` (the objective and its faults),
``rung`` (one rung and its typed result; the runner process's loop), ``runner`` (the
worker's long-lived rung runner), ``report`` (tables, plots, the median of the top N),
``local_postgres`` (a throwaway PostgreSQL server for one machine and the tests).
Importing this package loads nothing heavy; Optuna is needed only to run or report.
"""
