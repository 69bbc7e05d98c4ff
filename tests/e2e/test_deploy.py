"""Deployable the way the ecosystem deploys: ``bentoml build`` makes a Bento that serves ``/score``; a registered
model loads and predicts in a fresh venv built only from its own ``requirements.txt``; ``pip install .`` (not
editable) runs generate → train → serve from another folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


UV = [sys.executable, "-m", "uv"]  # a dev dependency: pip's installer takes minutes for the same set


def _venv(where: Path) -> Path:
    """A fresh venv on the base interpreter, holding nothing of this project's."""
    _run([*UV, "venv", "-q", "--python", sys.base_prefix + "/bin/python3", where], env=_clean_env())
    return where / "bin"


def _install(bin_: Path, *args: str | Path) -> None:
    _run([*UV, "pip", "install", "-q", "--python", bin_ / "python", *args], env=_clean_env())


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this project's interpreter or paths."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "LEADSCORE_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    return env | extra


def _example(motion: str) -> dict:
    return json.loads((ROOT / "serving" / "examples" / f"{motion}.json").read_text())


def test_bentoml_build_makes_a_bento_that_serves_score(trained, start_service, tmp_path):
    env = os.environ | {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    out = _run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT, env=env).stdout
    tag = re.search(r"__tag__:(\S+)", out).group(1)
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    assert name == "leadscore" and (bento / "bento.yaml").exists()
    src = bento / "src"
    for f in ("serving/service.py", "serving/examples/b2b.json", "features/definitions.py", "model/artifact.py",
              "leadscore/settings.py", "conf/b2b.yaml", "conf/b2c.yaml", "conf/hybrid.yaml"):  # fmt: skip
        assert (src / f).is_file(), f
    assert not list(src.rglob("test_*.py")) and not (src / "bench").exists() and not list(src.rglob("*.db"))
    lock = (bento / "env" / "python" / "requirements.txt").read_text()  # locked from requirements.in
    for pkg in ("lightgbm", "mlflow", "bentoml", "scikit-learn", "pandas"):
        assert re.search(rf"^{pkg}==\d", lock, re.M), f"{pkg} is not pinned in the Bento"
    assert (bento / "env" / "docker" / "Dockerfile").exists()  # what `bentoml containerize` builds from
    # The built Bento, served from BentoML's store (not from this checkout): models come from the registry.
    service = start_service(
        env | {"LEADSCORE_HOME": str(tmp_path / "home"),
               "LEADSCORE_ONLINE_STORE_URL": f"sqlite:///{Path(os.environ['LEADSCORE_HOME']) / 'online.db'}"},
        command=lambda host, port: [sys.executable, "-m", "bentoml", "serve", tag, "--host", host, "--port",
                                    str(port)],
        cwd=tmp_path,
    )  # fmt: skip
    assert service.proc.poll() is None
    r = httpx.post(f"{service.url}/score", json=_example("b2b"), timeout=30)
    assert r.status_code == 200, r.text
    assert 0 <= r.json()["score"] <= 1 and r.json()["version"] == trained["b2b"].version


def test_a_registered_model_predicts_in_a_venv_without_this_project(trained, tmp_path):
    import mlflow.artifacts

    from model import registry

    registry.setup_mlflow()
    local = Path(
        mlflow.artifacts.download_artifacts("models:/b2b@champion", dst_path=str(tmp_path / "model"))
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["code"] == "code"  # logged with its code
    assert {p.name for p in (local / "code").iterdir()} >= {"leadscore", "model", "features"}
    schema = json.loads(mlmodel["signature"]["inputs"])
    kinds = {c["type"] for c in schema}
    assert (
        kinds <= {"long", "double", "string", "boolean", "datetime"}
        and "double" in kinds
        and "string" in kinds
    )
    assert all(c["required"] is False for c in schema)
    bin_ = _venv(tmp_path / "venv")
    _install(bin_, "-r", local / "requirements.txt")
    script = """
import importlib.util, json, sys
import mlflow.pyfunc
from mlflow.models import Model
assert importlib.util.find_spec("leadscore") is None, "this project is importable here"
path = sys.argv[1]
example = Model.load(path).load_input_example(path)
print(json.dumps(mlflow.pyfunc.load_model(path).predict(example).tolist()))
"""
    out = _run([bin_ / "python", "-c", script, local], cwd=tmp_path, env=_clean_env()).stdout
    scores = json.loads(out.strip().splitlines()[-1])
    from mlflow.models import Model

    here, _ = registry.load("b2b@champion")
    expected = here.predict(None, Model.load(str(local)).load_input_example(str(local)))
    assert scores == pytest.approx(expected.tolist(), abs=1e-12) and len(scores) == 5


def test_a_non_editable_install_runs_from_another_folder(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".git", ".venv", "mlruns", ".leadscore", "*.db", "data", "__pycache__",
                                    "build", "*.egg-info", "notebooks", "tests", "bench")  # fmt: skip
    shutil.copytree(ROOT, src, ignore=ignore)
    bin_ = _venv(tmp_path / "venv")
    _install(bin_, src)
    shutil.rmtree(src)  # nothing may come from the source folder
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(PATH=f"{bin_}:{_clean_env()['PATH']}")
    leadscore = bin_ / "leadscore"
    assert re.fullmatch(
        r"leadscore \d+\.\d+\.\d+\n", _run([leadscore, "--version"], cwd=work, env=env).stdout
    )
    _run([leadscore, "generate", "b2b", "--leads", "3000", "--out", "data/b2b"], cwd=work, env=env)
    _run([leadscore, "train", "b2b", "--data", "data/b2b"], cwd=work, env=env)
    assert (work / "mlflow.db").exists() and (work / ".leadscore").is_dir()  # the embedded defaults, here
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    assert (site / "leadscore" / "conf" / "b2b.yaml").is_file()  # the configurations travel in the wheel
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([leadscore, "serve", "--port", str(port)], cwd=work, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            import time

            time.sleep(0.5)
        r = httpx.post(f"{url}/score", json=_example("b2b"), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["motion"] == "b2b" and 0 <= r.json()["score"] <= 1
    finally:
        proc.terminate()
        proc.wait(30)
