"""Data-quality gates: the Great Expectations suite from a spec, Evidently drift statistics, and the drift
retrain policy. Pure checks over frames and figures; jobs/ runs them and records the results."""
