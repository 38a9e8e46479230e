"""Health, metrics, OpenAPI, configuration, the command line, migrations, logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.signing import HEADER_QUEUE, HEADER_QUEUE_SIGNATURE
from messenger.server import ConfigError, ServerConfig, create_app, load_config
from messenger.server.logs import JsonFormatter, configure_logging
from messenger.server.storage import (
    LATEST_VERSION,
    SqliteDatabase,
    StorageError,
    Tx,
    migrate,
    open_database,
)

from . import mls_data
from .conftest import ServerFactory, TestServer, make_config, serve

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


async def test_health(server: TestServer) -> None:
    response = await server.http.get(r.HEALTH)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_metrics_count_requests_and_deliveries(server: TestServer) -> None:
    alice = await server.registered()
    await alice.create_group(b"g")
    await alice.send(b"g", mls_data.application(b"g", 0, b"x"))
    text = (await server.http.get(r.METRICS)).text
    labels = 'method="POST",route="/v1/groups/{group_id}/messages",status="200"'
    assert f"messenger_http_requests_total{{{labels}}} 1.0" in text
    assert "messenger_deliveries_total 1.0" in text
    assert "messenger_registrations_total 1.0" in text
    assert 'messenger_messages_stored_total{kind="application"} 1.0' in text


async def test_openapi_describes_every_route(server: TestServer) -> None:
    document = (await server.http.get(r.OPENAPI)).json()
    assert document["openapi"].startswith("3.1")
    for route in r.ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        if route.request is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in document["components"]["schemas"]
        # The queue proof's headers where, and only where, the route needs the queue.
        headers = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "header"}
        assert ({HEADER_QUEUE, HEADER_QUEUE_SIGNATURE} <= headers) is route.proves_queue
    commit = document["components"]["schemas"]["CommitRequest"]
    assert commit["required"] == ["epoch", "commit", "members"]
    assert commit["additionalProperties"] is False
    assert "409" in document["paths"][r.GROUP_COMMITS]["post"]["responses"]


async def test_health_reports_a_lost_database(server_factory: ServerFactory) -> None:
    async with server_factory() as server:
        await server.state.db.close()
        response = await server.http.get(r.HEALTH)
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"
        response = await server.client().raw("POST", r.REGISTER_CHALLENGE, signed=False)
        assert response.status_code == 200  # stateless
        alice = server.client()
        with pytest.raises(ApiError) as info:
            await alice.register()
        assert info.value.code is ErrorCode.UNAVAILABLE
        await server.state.db.connect()  # let the fixture close it cleanly


def test_config_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        '[server]\nhost = "0.0.0.0"\nport = 9000\ndata_dir = "/srv/m"\n'
        '[signup]\npolicy = "invite"\npow_difficulty = 18\n'
        "[limits]\nretention_seconds = 60\nsweep_interval_seconds = 5\n"
    )
    config = load_config(path, {"MESSENGER_PORT": "9100", "MESSENGER_TRUST_FORWARDED_FOR": "true"})
    assert (config.host, config.port, config.data_dir) == ("0.0.0.0", 9100, Path("/srv/m"))
    assert (config.signup_policy, config.pow_difficulty) == ("invite", 18)
    assert config.retention_seconds == 60 and config.sweep_interval_seconds == 5.0
    assert config.trust_forwarded_for is True
    assert config.effective_database_url == "sqlite:////srv/m/messenger.db"
    assert load_config(None, {"MESSENGER_CONFIG": str(path)}).port == 9000
    env_only = load_config(None, {"MESSENGER_DATABASE_URL": "postgresql://db/m"})
    assert env_only.effective_database_url == "postgresql://db/m"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("[server]\nprot = 1\n", {}),
        ('[server]\nport = "eighty"\n', {}),
        ('[signup]\npolicy = "everyone"\n', {}),
        ("", {"MESSENGER_PORT": "x"}),
        ("", {"MESSENGER_DATABASE_URL": "mysql://x"}),
        ("not toml [", {}),
        ("", {"MESSENGER_POW_DIFFICULTY": "65"}),
    ],
)
def test_bad_config_is_an_error(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, env)


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "messenger.server",
        *args,
        env={**os.environ, **env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_command_line_migrate_and_mint_invite(
    database_url: str, transport: str, tmp_path: Path
) -> None:
    env = {
        "MESSENGER_DATA_DIR": str(tmp_path / "data"),
        "MESSENGER_DATABASE_URL": database_url,
        "MESSENGER_SIGNUP_POLICY": "invite",
    }
    code, out, _ = await _run("migrate", env=env)
    assert code == 0 and f"version {LATEST_VERSION}" in out
    code, out, err = await _run("mint-invite", "--count", "2", env=env)
    assert code == 0, err
    codes = out.split()
    assert len(codes) == 2
    for line in err.splitlines():
        assert all(c not in line for c in codes)  # the codes go to stdout only
    config = make_config(tmp_path / "data", database_url, signup_policy="invite")
    async with serve(create_app(config, run_sweeper=False), transport, time.time) as server:
        await server.client().register(invite_code=codes[0])
        with pytest.raises(ApiError) as info:
            await server.client().register(invite_code=codes[0])
        assert info.value.code is ErrorCode.INVITE_INVALID
    code, _, err = await _run("--config", str(tmp_path / "missing.toml"), env=env)
    assert code == 2 and "cannot read" in err


async def test_migrations_are_idempotent_and_refuse_a_newer_schema(database_url: str) -> None:
    db = open_database(database_url)
    await db.connect()
    try:
        assert await migrate(db, 1) == LATEST_VERSION
        assert await migrate(db, 2) == LATEST_VERSION

        async def bump(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                LATEST_VERSION + 1,
                "from the future",
                3,
            )

        await db.transaction(bump)
        with pytest.raises(StorageError, match="newer"):
            await migrate(db, 4)
    finally:
        await db.close()


async def test_sqlite_file_is_served_by_one_process(tmp_path: Path) -> None:
    first = SqliteDatabase(tmp_path / "m.db")
    await first.connect()
    try:
        second = SqliteDatabase(tmp_path / "m.db")
        with pytest.raises(StorageError, match="another server process"):
            await second.connect()
    finally:
        await first.close()
    again = SqliteDatabase(tmp_path / "m.db")
    await again.connect()
    await again.close()


def test_logs_are_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    names = ("aiosqlite", "asyncpg", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = (
        root.handlers[:],
        root.level,
        {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in names},
    )
    configure_logging("DEBUG")
    try:
        logging.getLogger("messenger.server.test").info(
            "something happened", extra={"fields": {"route": "/v1/x", "status": 200}}
        )
        logging.getLogger("aiosqlite").debug("executing SELECT with secret parameters")
        lines = capsys.readouterr().err.strip().splitlines()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, (level, disabled) in saved[2].items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).disabled = disabled
    entries = [json.loads(line) for line in lines]
    assert entries[-1]["event"] == "something happened"
    assert (entries[-1]["route"], entries[-1]["status"], entries[-1]["level"]) == (
        "/v1/x",
        200,
        "info",
    )
    assert not any("secret" in line for line in lines)
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


def test_server_config_defaults() -> None:
    config = ServerConfig()
    assert config.signup_policy == "open" and config.pow_difficulty == 20
    assert config.database_url == "" and config.effective_database_url.startswith("sqlite:///")
