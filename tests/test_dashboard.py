"""Issue #16: the dashboard is safe by default and fails in one line; read commands never create a storage."""

from __future__ import annotations

import socket
import tempfile
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna.artifacts import upload_artifact

from autoshield.cli import main
from autoshield.core.errors import AutoshieldError
from autoshield.report.dashboard import WRAP_STYLE, guarded, is_loopback, listen
from autoshield.study.storage import artifact_store, open_storage


@pytest.fixture
def served(tmp_path):
    """A real study with one PNG artifact, and optuna-dashboard's own WSGI app on it."""
    from optuna_dashboard import wsgi

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=False)
    study = optuna.create_study(storage=storage, study_name="kept", directions=["maximize", "minimize"])
    trial = study.ask()
    store = artifact_store(tmp_path / "artifacts")
    with tempfile.NamedTemporaryFile(suffix=".png") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.flush()
        artifact = upload_artifact(artifact_store=store, file_path=handle.name, study_or_trial=trial)
    study.tell(trial, (0.5, 0.5))
    return storage, study, wsgi(storage, artifact_store=store), tmp_path / "artifacts", artifact


def _call(app, method: str, path: str) -> tuple[str, bytes]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    return status[0], body


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.5", False), ("myhost.example", False)],
)  # fmt: skip
def test_only_loopback_counts_as_local(host, loopback):
    assert is_loopback(host) is loopback


def test_read_only_refuses_every_change_and_the_study_survives(served):
    storage, study, app, folder, _ = served
    safe = guarded(app, read_only=True, artifacts=folder, log=print)
    study_id = study._study_id
    for method, path in [
        ("DELETE", f"/api/studies/{study_id}"),
        ("POST", f"/api/studies/{study_id}/rename"),
        ("PUT", f"/api/studies/{study_id}/note"),
        ("POST", "/api/studies"),
    ]:
        status, body = _call(safe, method, path)
        assert status.startswith("405") and b"read-only" in body
    assert _call(safe, "GET", "/api/studies")[0].startswith("200")
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["kept"]
    # the guard is what protects: the same request without it deletes the study
    assert _call(guarded(app, read_only=False, artifacts=folder, log=print), "DELETE", f"/api/studies/{study_id}")[
        0
    ].startswith("204")
    assert optuna.get_all_study_summaries(storage) == []


def test_a_missing_artifact_file_is_a_404_and_one_line(served):
    _, study, app, folder, artifact = served
    trial_id = study.trials[0]._trial_id
    safe = guarded(app, read_only=True, artifacts=folder, log=(lines := []).append)
    path = f"/artifacts/{study._study_id}/{trial_id}/{artifact}"
    status, body = _call(safe, "GET", path)
    assert status.startswith("200") and body.startswith(b"\x89PNG")
    (folder / artifact).unlink()
    status, _ = _call(safe, "GET", path)
    assert status.startswith("404") and len(lines) == 1 and artifact in lines[0]


def test_a_busy_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AutoshieldError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen(lambda environ, start: [], host="127.0.0.1", port=port)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dashboard", "--host", "0.0.0.0"), "add --allow-remote"),
        (("dashboard",), "no study database at"),
        (("report",), "no study database at"),
        (("export",), "no study database at"),
        (("confirm",), "no study database at"),
    ],
)
def test_bad_dashboard_and_read_commands_are_one_line_and_create_nothing(args, message, tmp_path, capsys):
    db = tmp_path / "typo.db"
    assert main([*args, "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not db.exists()
    assert main(["report", "--storage", f"journal:{tmp_path / 'typo.log'}"]) == 2
    assert not (tmp_path / "typo.log").exists()


def test_dashboard_help_explains_the_risk(capsys):
    assert main(["dashboard", "--help"]) == 0
    assert "no authentication" in capsys.readouterr().out.replace("\n", " ")


def test_served_pages_let_long_values_wrap(served):
    """optuna-dashboard shows each attribute on one unbroken line; the pages autoshield serves carry a style that
    lets them wrap (a trial page measured 8,264 px wide at a 1,400 px window without it, 1,400 px with it)."""
    _, _, app, folder, _ = served
    environ = {"PATH_INFO": "/dashboard/", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    answer = {}
    body = b"".join(
        guarded(app, read_only=True, artifacts=folder, log=print)(
            environ, lambda status, headers, exc_info=None: answer.update(status=status, headers=dict(headers))
        )
    )
    assert answer["status"].startswith("200") and WRAP_STYLE in body
    assert int(answer["headers"]["Content-Length"]) == len(body)
