"""`model_family` picks the candidate `train` registers: the MLP, the HistGradientBoosting model, or the better."""

from __future__ import annotations

import pytest

from jobs.train import Fitted
from nightshift.settings import Settings


def fitted(mlp_auc: float, gbdt_auc: float) -> Fitted:
    return Fitted(mlp="mlp scorer", fit=None, baseline="gbdt scorer", mlp_auc=mlp_auc, mlp_log_loss=0.5,
                  baseline_auc=gbdt_auc, baseline_log_loss=0.5, baseline_seconds=1.0)


@pytest.mark.parametrize(("setting", "mlp_auc", "gbdt_auc", "family"), [
    ("mlp", 0.70, 0.75, "mlp"),
    ("gbdt", 0.75, 0.70, "gbdt"),
    ("best", 0.70, 0.75, "gbdt"),
    ("best", 0.75, 0.70, "mlp"),
    ("best", 0.72, 0.72, "mlp"),  # a tie keeps the network
])
def test_family_and_its_scorer(setting: str, mlp_auc: float, gbdt_auc: float, family: str) -> None:
    f = fitted(mlp_auc, gbdt_auc)
    assert f.family(setting) == family
    assert f.scorer(family) == f"{family} scorer"
    assert f.holdout_auc(family) == (gbdt_auc if family == "gbdt" else mlp_auc)


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="model_family"):
        Settings(model_family="xgboost")  # type: ignore[arg-type]
