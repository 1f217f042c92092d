"""A derive hook that fails on a marker value: a real model whose inference breaks on some inputs.

A bundle whose preprocessing names this hook loads and warms up like any other (warm-up rows never
hold the marker), then fails for requests that send it: what a model with a latent bug does.
"""

import pandas as pd

from nightshift.sources.tiny import derive

MARKER = 99.125  # x2 value that makes inference fail


def derive_failing_on_marker(frame: pd.DataFrame) -> pd.DataFrame:
    """The tiny dataset's derive hook, raising when any row's x2 is MARKER."""
    if (pd.to_numeric(frame["x2"], errors="coerce") == MARKER).any():
        raise ValueError(f"x2 == {MARKER}: the model's preprocessing cannot handle this row")
    return derive(frame)


def derive_infinite_on_marker(frame: pd.DataFrame) -> pd.DataFrame:
    """The tiny dataset's derive hook, with an infinite derived feature where x2 is MARKER: a model whose
    scores for those rows are not finite numbers."""
    out = derive(frame)
    out.loc[pd.to_numeric(frame["x2"], errors="coerce") == MARKER, "x1_abs"] = float("inf")
    return out
