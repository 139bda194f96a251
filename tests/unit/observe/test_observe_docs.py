"""docs/observability.md stays true: its metric table, its config example and its JSON log example."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from corral.config import ConfigError, load_plan
from corral.http.request import Request
from corral.observe.access import AccessLog
from corral.observe.metrics import render
from corral.observe.state import CAUSES, MasterStats

DOC = (Path(__file__).parents[3] / "docs" / "observability.md").read_text(encoding="utf-8")


def block(language: str, containing: str) -> str:
    for body in re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL):
        if containing in body:
            return body
    raise AssertionError(f"no {language} block with {containing!r}")


def test_the_metric_table_matches_the_exposition() -> None:
    master = MasterStats()
    master.add_site("main", 1)
    body = render(master.state())[0].decode()
    exported = {name for name in re.findall(r"^# TYPE (\S+) ", body, re.MULTILINE)}
    ours = {name for name in exported if not name.startswith("corral_master_")}
    table = DOC[DOC.index("## Every metric") : DOC.index("## Scraping with Prometheus")]
    documented = set(re.findall(r"^\| `(corral_[a-z_]+)` \|", table, re.MULTILINE))
    assert ours == documented
    assert "`corral_master_process_*`" in table and any(n.startswith("corral_master_process_") for n in exported)
    for cause in CAUSES:
        assert f"`{cause}`" in table


def test_the_toml_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "corral.toml"
    path.write_text(block("toml", "metrics-bind"), encoding="utf-8")
    assert load_plan(str(path)).server.metrics_bind == "127.0.0.1:9100"


def test_metrics_bind_is_a_server_key(tmp_path: Path) -> None:
    path = tmp_path / "corral.toml"
    path.write_text('[sites.blog]\napp = "basic:hello"\nmetrics-bind = "127.0.0.1:9100"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="metrics-bind"):
        load_plan(str(path))


def test_the_json_log_example_has_the_fields_we_write(tmp_path: Path) -> None:
    example = json.loads(block("json", "request_id"))
    request = Request()
    request.method, request.target, request.path, request.query = "GET", b"/", b"/", b""
    ex = SimpleNamespace(environ={"REMOTE_ADDR": "127.0.0.1"}, request=request, response=SimpleNamespace(code=200),
                         bytes_out=0, started=time.monotonic())
    log = AccessLog(str(tmp_path / "a.log"), "json")
    try:
        log(ex)  # type: ignore[arg-type]
    finally:
        log.close()
    written = json.loads((tmp_path / "a.log").read_text(encoding="utf-8"))
    assert list(example) == list(written)
    fields = DOC[DOC.index("### `json`") : DOC.index("## Process titles")]
    for key in written:
        assert f"`{key}`" in fields, key
