"""Derived features of the tiny test dataset."""

import pandas as pd


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Absolute value of x1."""
    return frame.assign(x1_abs=pd.to_numeric(frame["x1"], errors="coerce").abs())
