"""Shared fixtures: small generated data sets (session-scoped) and an isolated project state per test run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from synthetic import generate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_URL = os.environ.get("LEADSCORE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LEADSCORE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True, scope="session")
def _isolated_state(tmp_path_factory):
    """Every test run keeps its MLflow store and LEADSCORE_HOME in a temporary folder."""
    root = tmp_path_factory.mktemp("state")
    old = {k: os.environ.get(k) for k in ("LEADSCORE_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["LEADSCORE_HOME"] = str(root / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def b2b_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b2b")
    generate("b2b", 6000, 7, out)
    return out


@pytest.fixture(scope="session")
def b2c_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b2c")
    generate("b2c", 6000, 7, out)
    return out


@pytest.fixture(scope="session")
def data_of(b2b_dir, b2c_dir):
    """The generated data folder of a motion (hybrid shares the B2B tables)."""
    return lambda motion: b2c_dir if motion == "b2c" else b2b_dir


def _require(available: bool, what: str) -> None:
    if not available:
        if os.environ.get("CI"):
            pytest.fail(f"{what} must be running on 127.0.0.1 in CI (.ci/run starts it)")
        pytest.skip(f"{what} not running on 127.0.0.1")


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL (a failure in CI, a skip elsewhere when it is not running)."""
    _require(_pg_available(), "PostgreSQL")
    return PG_URL


@pytest.fixture
def pg_schema_url(pg_url) -> str:
    """A URL of the test PostgreSQL whose search path is a fresh schema of its own."""
    import psycopg

    schema = f"ls_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    return f"{pg_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require(_redis_available(), "Redis")
    return REDIS_URL


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data sets beside the repository (``../shared/data``)."""
    if not SHARED.exists():
        _require(False, "the shared data sets (../shared/data)")
    return SHARED


@pytest.fixture(scope="session")
def trained(b2b_dir, b2c_dir, _isolated_state):
    """All three motions trained on the small data sets, champions registered, online stores materialized."""
    from features.historical import latest_time
    from features.materialize import materialize
    from features.online_store import open_store
    from features.prepare import prepare
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.settings import Settings
    from training.pipelines import train_motion

    results = {}
    settings = Settings.load()
    settings.ensure_home()
    store = open_store(settings.online_store_url)
    for motion in ("b2b", "b2c", "hybrid"):
        folder = b2c_dir if motion == "b2c" else b2b_dir
        results[motion] = train_motion(motion, folder)
        p = prepare(motion, load_dataset(folder, motion))
        materialize(p, latest_time(p), load_config(motion), store)
    store.close()
    return results


class Service:
    """The scoring service, started as ``bentoml serve`` on a free port (BentoML's arbiter and its workers)."""

    def __init__(self, env: dict[str, str], log: Path, command=None, cwd: Path | None = None):
        import socket
        import subprocess

        from serving import serve_command

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url, self.log = f"http://127.0.0.1:{port}", log
        with open(log, "w") as fh:
            self.proc = subprocess.Popen(
                (command or serve_command)("127.0.0.1", port),
                cwd=cwd or Path(__file__).resolve().parents[1],
                env=os.environ | env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        import time

        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"server not ready: {self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        """The live worker processes' ids (children of the ``bentoml serve`` process that serve the API); a worker
        killed but not yet reaped (a zombie) or gone meanwhile is not one."""
        import psutil

        def serving(c: psutil.Process) -> bool:
            try:
                line = c.cmdline()
            except (psutil.ZombieProcess, psutil.NoSuchProcess):
                return False
            return "_bentoml_impl.worker" in " ".join(line) or "worker" in " ".join(line[1:3])

        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True) if serving(c)]

    def stop(self, timeout: float = 30) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)


@pytest.fixture(scope="module")
def start_service(tmp_path_factory):
    """``start_service(env, command=None, cwd=None)``: a running service with these settings (stopped when the
    test module ends); ``command(host, port)`` is its command line (default: ``bentoml serve`` of this checkout)."""
    started: list[Service] = []

    def start(env: dict[str, str] | None = None, command=None, cwd: Path | None = None) -> Service:
        service = Service(env or {}, tmp_path_factory.mktemp("service") / "server.log", command, cwd)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """``browser(page) -> (screenshot, console_errors)``: a page rendered by headless Chromium (Debian's
    ``chromium``, installed here when it is missing and this runs as root, as on CI machines)."""
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, capture_output=True,
                       env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        exe = shutil.which("chromium")
    _require(exe is not None, "Chromium (apt-get install chromium)")
    out = tmp_path_factory.mktemp("browser")

    def render(page: Path, width: int = 1200, height: int = 3000) -> tuple[Path, list[str]]:
        shot = out / f"{page.stem}-{uuid.uuid4().hex[:6]}.png"
        r = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
             "--v=0", f"--window-size={width},{height}", f"--screenshot={shot}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert shot.exists(), r.stderr[-3000:]
        errors = [line for line in r.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
        return shot, errors

    return render
