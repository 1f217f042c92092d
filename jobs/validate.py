"""Validate: the Great Expectations gate (validation/suite.py) on the data date's partition.

The result and the Data Docs go to one MLflow run per dataset and date (reused on rerun); a
failure raises ValidationFailed naming every failed expectation, so nothing is trained or promoted.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from jobs.context import Pipeline
from nightshift import offline
from validation.suite import Report, ValidationFailed, run_suite


def validate(ctx: Pipeline, data_date: date, *, log: Any = print) -> dict[str, Any]:
    """Validate the data date's partition; log the Data Docs to MLflow; raise ValidationFailed on failure."""
    t0 = time.perf_counter()
    settings, spec = ctx.settings, ctx.spec
    frame = offline.read_partition(settings.offline_dir, spec.name, data_date)
    project = settings.home / "gx" / spec.name / data_date.isoformat()
    report = run_suite(spec, frame, project, run_name=f"{spec.name}-{data_date.isoformat()}", day=data_date)
    docs_uri = _log_to_mlflow(ctx, data_date, report)
    log(f"validation of {spec.name} {data_date} {report.summary()}")
    log(f"Data Docs: {report.docs_index} (MLflow: {docs_uri})")
    if not report.passed:
        raise ValidationFailed(f"{spec.name} partition {data_date} failed validation; nothing will be trained or "
                               f"promoted.\n{report.summary()}\nData Docs: {report.docs_index}")
    return {"passed": True, "summary": report.summary(), "docs": str(report.docs_index),
            "seconds": time.perf_counter() - t0}


def _log_to_mlflow(ctx: Pipeline, data_date: date, report: Report) -> str:
    """One MLflow run per dataset and date (reused on rerun) holding the result and the Data Docs."""
    import mlflow

    found = mlflow.search_runs(filter_string=f"tags.kind = 'validation' and tags.data_date = '{data_date}'",
                               experiment_ids=[ctx.experiment_id], max_results=1, output_format="list")
    run_id = found[0].info.run_id if found else None
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"validate {data_date}",
                          experiment_id=ctx.experiment_id) as run:
        mlflow.set_tags({"kind": "validation", "dataset": ctx.dataset, "data_date": data_date.isoformat(),
                         "validation_result": "passed" if report.passed else "failed"})
        mlflow.log_metrics({"expectations_evaluated": report.evaluated,
                            "expectations_failed": len(report.failures)})
        mlflow.log_text(report.summary(), "validation_summary.txt")
        if report.docs_index is not None:
            mlflow.log_artifacts(str(report.docs_index.parent), "data_docs")
        return f"{run.info.artifact_uri}/data_docs/index.html"
