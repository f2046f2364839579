"""Dead workers: heartbeat settings and the trials a killed worker leaves RUNNING.

Optuna fails a trial whose heartbeat went stale and, through the storage's
retry callback, queues it again; a worker killed before its trial's first
heartbeat leaves a trial that Optuna's check never sees, so `fail_orphans`
handles those.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30


def fail_orphans(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail and requeue RUNNING trials that never recorded a heartbeat and started over GRACE_SECONDS ago.

    A worker killed between creating its trial and the first heartbeat leaves such a trial; Optuna's
    stale-trial check skips trials without a heartbeat, so without this a grid would wait for it forever."""
    if not isinstance(storage, RDBStorage) or storage.heartbeat_interval is None:
        return []  # no heartbeats at all: a running trial without one proves nothing
    from sqlalchemy import DateTime, bindparam, text

    query = text(
        "select t.trial_id from trials t where t.study_id = :study and t.state = 'RUNNING' and t.datetime_start < "
        ":cutoff and not exists (select 1 from trial_heartbeats h where h.trial_id = t.trial_id)"
    ).bindparams(bindparam("cutoff", type_=DateTime))  # formatted as Optuna stores datetime_start
    study_id = storage.get_study_id_from_name(study.study_name)
    cutoff = datetime.now() - timedelta(seconds=GRACE_SECONDS)  # Optuna writes datetime_start as local time
    with storage.engine.connect() as connection:
        orphans = [row[0] for row in connection.execute(query, {"study": study_id, "cutoff": cutoff})]
    failed = []
    for trial_id in orphans:
        number = storage.get_trial_number_from_id(trial_id)
        if study.tell(number, state=TrialState.FAIL, skip_if_finished=True).state != TrialState.FAIL:
            continue  # its worker was alive after all and finished it
        if callback := storage.get_heartbeat_stale_trial_callback():
            callback(study, storage.get_trial(trial_id))
        failed.append(number)
    return failed


def recover_dead_workers(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """Requeue the trials of dead workers: stale heartbeats (Optuna) and trials that never had one."""
    optuna.storages.fail_stale_trials(study)
    fail_orphans(study, storage)
