"""The defaults are the fast path: what `pip install` and a configuration that says nothing about
processes give is what the benchmark measures, uvloop and one worker process per CPU."""

import asyncio
import os
import smtplib
import time
from pathlib import Path

from mailboat.config.load import default_config, parse_config
from mailboat.daemon import _run_loop, worker_count

from mbtest import NO_DNS, children, start_config

CPUS = len(os.sched_getaffinity(0))


def test_the_embedded_default_and_a_silent_file_run_one_worker_per_cpu(tmp_path):
    assert worker_count(default_config(tmp_path)) == CPUS
    assert worker_count(parse_config('data_dir = "data"\n', "c.toml", tmp_path)) == CPUS
    assert worker_count(parse_config('data_dir = "data"\n[server]\nworkers = 1\n', "c.toml", tmp_path)) == 1


def test_the_server_loop_is_uvloop():
    import uvloop  # a dependency wherever it builds (pyproject.toml): its absence is a failure here

    result: list[type] = []

    async def main() -> None:
        result.append(type(asyncio.get_running_loop()))

    _run_loop(main())
    assert result == [uvloop.Loop]


def test_serve_with_no_server_section_runs_a_uvloop_process_per_cpu(tmp_path):
    config = tmp_path / "mailboat.toml"
    config.write_text(f'hostname = "mx.test.example"\ndata_dir = "data"\n[[listener]]\nkind = "smtp"\n'
                      f'address = "127.0.0.1:0"\n[domains]\nlocal = ["example.com"]\ncatch_all = true\n{NO_DNS}')
    server = start_config(config, tmp_path / "data")
    try:
        deadline = time.monotonic() + 20
        while server.log.count("daemon started") < CPUS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.log.count("daemon started") == CPUS, server.log[-3000:]
        workers = children(server.proc.pid)
        assert len(workers) == CPUS - 1, workers
        for pid in (server.proc.pid, *workers):
            assert "uvloop" in Path(f"/proc/{pid}/maps").read_text(), pid
        with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=20) as client:
            client.sendmail("sender@example.org", ["alice@example.com"], "Subject: defaults\r\n\r\nbody\r\n")
        [message] = server.wait_messages("alice@example.com", 1)
        assert message.endswith(b"Subject: defaults\r\n\r\nbody\r\n")
    finally:
        log = server.stop()
    assert server.proc.returncode == 0, log[-3000:]
    assert log.count("daemon stopped") == CPUS
    assert "Traceback" not in log
