"""Lineage: `kedro viz build` writes a static site that headless Chromium renders with the pipeline drawn.

With ADAPTSEG_UPDATE_DOCS=1 the test also refreshes the README's screenshot, docs/images/kedro_viz.png.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from adaptseg.pipelines.evaluation.pipeline import DEFAULT_MODELS as MODELS
from tests.conftest import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
KEDRO = Path(sys.executable).parent / "kedro"
SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "kedro_viz.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--virtual-time-budget=15000", "--window-size=1600,1000",
]

# Kedro-Viz keeps its settings in localStorage: hide the feature-hint pop-up and use the light theme, then
# open the page named after '#' (same origin, so the settings apply).
SETTINGS_PAGE = """<!DOCTYPE html><script>
localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false, theme: "light"}));
location.replace("./" + location.hash.slice(1));
</script>"""


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get the first time; skips the test when that is impossible."""
    if not CHROMIUM.exists():
        try:
            subprocess.run("apt-get update && apt-get install -y chromium", shell=True, check=True, timeout=1200,
                           capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"Chromium is missing and `apt-get install -y chromium` failed ({exc}); "
                        "install Debian's chromium package to run this test.")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found after installing the chromium package.")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browse(chromium: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile and no network traffic of its own."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_viz_build_renders_the_pipeline(project_copy, chromium):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    built = subprocess.run([str(KEDRO), "viz", "build", "--include-previews"], cwd=project_copy, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    site = project_copy / "build"
    api = json.loads((site / "api" / "main").read_text())
    tasks = {node["name"] for node in api["nodes"] if node["type"] == "task"}
    assert {"ingest_source", "build_comparison", "build_html_report"} <= tasks
    assert set(MODELS) <= {node["name"] for node in api["nodes"] if node["type"] == "modularPipeline"}
    assert {"reporting", "__default__"} <= {p["id"] for p in api["pipelines"]}
    (site / "_settings.html").write_text(SETTINGS_PAGE)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(site)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{port}/"
        for _ in range(50):
            try:
                urllib.request.urlopen(root, timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        page = root + "_settings.html#?pid=__default__&types=nodes"
        dom = browse(chromium, page, "--dump-dom").stdout
        assert 'data-node-fullname="ingest_source"' in dom, dom[-2000:]  # a task node drawn in the flowchart
        for namespace in MODELS:  # each method a collapsed group
            assert f'data-node-type="modularPipeline" data-node-fullname="{namespace}"' in dom
        assert 'data-node-fullname="build_html_report"' in dom
        if os.environ.get("ADAPTSEG_UPDATE_DOCS") == "1":
            shot = project_copy / "kedro_viz.png"
            browse(chromium, page, f"--screenshot={shot}")
            assert shot.read_bytes().startswith(b"\x89PNG")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        server.terminate()
        server.wait(timeout=10)
