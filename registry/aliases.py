"""The MLflow registry: one registered model per dataset, aliases with an audit trail, rollback."""

from __future__ import annotations

from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from nightshift import store

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


# What the registry answers when an alias is not set or the model does not exist (REST and SQL stores).
NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


class RegistryUnavailable(RuntimeError):
    """The model registry did not answer (down, unreachable, erroring): not the same as an unset alias."""


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points to, or None when it is not set (or the model does not exist).

    Any other failure (the registry down or erroring) raises RegistryUnavailable: read as "no alias", an
    outage would unload a challenger or fail a rollback with the wrong reason.
    """
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise RegistryUnavailable(f"the model registry did not answer for {name}@{alias}: "
                                  f"{str(exc).splitlines()[0][:300]}") from exc
    except Exception as exc:  # noqa: BLE001  (a SQL store's driver error, a connection error)
        raise RegistryUnavailable(f"the model registry did not answer for {name}@{alias}: "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc


def ensure_model(client: MlflowClient, name: str, description: str = "") -> None:
    """Create the registered model if it does not exist yet."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)


def find_version(client: MlflowClient, name: str, **tags: str) -> Any | None:
    """The newest version of `name` whose tags match all of `tags`, or None."""
    clauses = [f"name = '{name}'"] + [f"tags.{k} = '{v}'" for k, v in tags.items()]
    found = client.search_model_versions(" and ".join(clauses))
    return max(found, key=lambda v: int(v.version)) if found else None


def move_alias(client: MlflowClient, engine: Engine, *, name: str, alias: str, version: str | None,
               actor: str, reason: str) -> None:
    """Point `alias` at `version` (None removes it) and append the move to the audit table."""
    before = alias_version(client, name, alias)
    if before == version:
        return
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, version)
    store.record_alias_move(engine, model_name=name, alias=alias, from_version=before, to_version=version,
                            actor=actor, reason=reason)


def promote(client: MlflowClient, engine: Engine, *, name: str, version: str, actor: str, reason: str) -> str | None:
    """Make `version` champion; the replaced champion keeps alias previous. Returns the replaced one."""
    old = alias_version(client, name, CHAMPION)
    if old == version:
        return old
    if old is not None:
        move_alias(client, engine, name=name, alias=PREVIOUS, version=old, actor=actor,
                   reason=f"replaced by v{version}: {reason}")
    move_alias(client, engine, name=name, alias=CHAMPION, version=version, actor=actor, reason=reason)
    if alias_version(client, name, CHALLENGER) == version:
        move_alias(client, engine, name=name, alias=CHALLENGER, version=None, actor=actor,
                   reason=f"v{version} promoted")
    return old


def rollback(client: MlflowClient, engine: Engine, *, name: str, actor: str, reason: str) -> tuple[str, str]:
    """Swap champion and previous; returns (from_version, to_version). Fails clearly with no previous."""
    current = alias_version(client, name, CHAMPION)
    target = alias_version(client, name, PREVIOUS)
    if current is None or target is None:
        raise RuntimeError(f"cannot roll back {name}: champion={current}, previous={target}; "
                           "rollback needs both aliases set")
    move_alias(client, engine, name=name, alias=CHAMPION, version=target, actor=actor, reason=f"rollback: {reason}")
    move_alias(client, engine, name=name, alias=PREVIOUS, version=current, actor=actor,
               reason=f"rolled back from v{current}: {reason}")
    return current, target
