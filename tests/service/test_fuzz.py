"""A fuzzer on the published OpenAPI document (schemathesis against /docs.json of the running service): no case
gets a 5xx, and every answer matches the schema the document publishes for it (errors in their one shape)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 60


def test_the_published_api_never_answers_5xx_and_matches_its_own_schema(trained, start_service, tmp_path):
    service = start_service({"LEADSCORE_HOME": str(tmp_path / "home")})
    run = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{service.url}/docs.json", "--url", service.url,
         "-n", str(EXAMPLES_PER_OPERATION), "--phases", "fuzzing", "--generation-deterministic",
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--workers", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache stays out of the repo
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    cases = int(re.search(r"(\d+) generated", run.stdout).group(1))
    assert cases >= 300 and f"{cases} generated, {cases} passed" in run.stdout, run.stdout[-3000:]
