"""A small client of Airflow 3's REST API (v2): log in, unpause, trigger a run, wait for it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import requests

FINISHED = {"success", "failed"}


@dataclass
class AirflowAPI:
    """Talks to an Airflow API server as one user of the simple auth manager."""

    base_url: str
    username: str
    password: str
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._session = requests.Session()
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            r = self._session.post(f"{self.base_url}/auth/token", timeout=self.timeout,
                                   json={"username": self.username, "password": self.password})
            if r.status_code >= 400:
                raise RuntimeError(f"Airflow login as {self.username!r} failed: {r.status_code} {r.text[:200]}")
            self._token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self._session.request(method, f"{self.base_url}/api/v2{path}", headers=self._headers(),
                                  timeout=self.timeout, **kwargs)
        if r.status_code >= 400:
            raise RuntimeError(f"Airflow {method} {path} -> {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def wait_until_up(self, timeout: float = 180.0) -> None:
        """Block until the API server answers its health check."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow API at {self.base_url} not up after {timeout:.0f}s")
            time.sleep(2)

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> None:
        """Block until the DAG processor has parsed `dag_id`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", f"/dags/{dag_id}")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"DAG {dag_id} not parsed after {timeout:.0f}s") from None
                time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def find_run(self, dag_id: str, data_date: date) -> dict[str, Any] | None:
        """The run of `dag_id` whose logical date is `data_date` (Airflow keeps at most one), or None."""
        logical = f"{data_date.isoformat()}T00:00:00Z"
        runs = self._call("GET", f"/dags/{dag_id}/dagRuns",
                          params={"logical_date_gte": logical, "logical_date_lte": logical})["dag_runs"]
        return runs[0] if runs else None

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value of a task of a run, or None when there is none."""
        try:
            entry = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                               params={"deserialize": "true", "stringify": "false"})
        except RuntimeError as exc:
            if "-> 404" in str(exc):
                return None
            raise
        return entry.get("value") if entry else None

    def trigger(self, dag_id: str, data_date: date, conf: dict[str, Any] | None = None, log: Any = print) -> str:
        """Start a run for `data_date`; its run id.

        The first run of a date has that date as its logical date. Airflow keeps one run per logical
        date, so a later run of the same date is a new run with no logical date and the date in its
        `data_date` param: the earlier run keeps its history (nothing is cleared or rewritten).
        """
        logical = f"{data_date.isoformat()}T00:00:00Z"
        try:
            return str(self._call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical,
                                                                          "conf": conf or {}})["dag_run_id"])
        except RuntimeError as exc:
            if "-> 409" not in str(exc):
                raise
        earlier = self.find_run(dag_id, data_date)
        run_id = str(self._call("POST", f"/dags/{dag_id}/dagRuns", json={
            "logical_date": None, "conf": {**(conf or {}), "data_date": data_date.isoformat()}})["dag_run_id"])
        log(f"{dag_id} already has run {earlier['dag_run_id'] if earlier else '?'} for {data_date} (kept as it is): "
            f"started run {run_id} for the same data date")
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        out = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in out["task_instances"]}

    def failure(self, dag_id: str, run_id: str) -> str | None:
        """Why a failed run failed: its first failed task and the error its last try raised, or None."""
        out = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        failed = [ti for ti in out["task_instances"] if ti["state"] == "failed"]
        if not failed:
            return None
        ti = min(failed, key=lambda t: str(t.get("start_date") or ""))
        try:
            logs = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                                     f"{max(int(ti.get('try_number') or 1), 1)}")
        except RuntimeError:
            return f"task {ti['task_id']} failed"
        for entry in reversed(logs.get("content") or []):
            for detail in (entry.get("error_detail") or []) if isinstance(entry, dict) else []:
                return f"task {ti['task_id']} failed: {detail.get('exc_type')}: {detail.get('exc_value')}"
        return f"task {ti['task_id']} failed"

    def wait(self, dag_id: str, run_id: str, timeout: float = 1800.0, log: Any = print) -> str:
        """Poll until the run finishes; returns its final state, logging task states as they change."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            tasks = self.task_states(dag_id, run_id)
            now = ", ".join(f"{k}={v}" for k, v in tasks.items())
            if now != last:
                log(f"{dag_id} {run_id}: {state} [{now}]")
                last = now
            if state in FINISHED:
                return state
            time.sleep(3)
        raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout:.0f}s")
