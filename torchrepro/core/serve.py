"""``torchrepro serve [RUNS_DIR] [--host H] [--port N]``: start the web demo (Streamlit, see
:mod:`torchrepro.core.serve_app`) on ``http://HOST:PORT``, by default on this machine only (127.0.0.1).

The command checks what it can in one line each (the runs folder exists, Streamlit is installed, the port is
free), prints the URL, then replaces itself with ``python -m streamlit run …`` so that Ctrl-C or a SIGTERM reaches
the server itself and no process is left behind.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

from torchrepro.core.errors import ConfigError, DataError, UserError

APP_MODULE = "torchrepro.core.serve_app"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def app_script() -> Path:
    """The Streamlit script's path (found without importing it: importing it would run the app)."""
    spec = importlib.util.find_spec(APP_MODULE)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def streamlit_command(runs_dir: Path, host: str, port: int) -> list[str]:
    """The command line of the server: headless, no usage statistics, no file watcher, a viewer's toolbar (no
    developer menu), RUNS_DIR after ``--``."""
    return [sys.executable, "-m", "streamlit", "run", str(app_script()),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            "--", str(runs_dir)]


def check(runs_dir: Path, host: str, port: int) -> None:
    """One-line UserErrors for a missing runs folder, a missing Streamlit, a bad or busy port."""
    if not Path(runs_dir).is_dir():
        raise DataError(f"runs folder '{runs_dir}' does not exist: pass the folder your runs are in "
                        f"(`torchrepro serve runs`), or train one first (`torchrepro train "
                        f"configs/driving_synthetic.yaml`)")
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("streamlit is not installed, and `torchrepro serve` runs on it: install it with "
                        "`pip install -e .` in the repository (or `pip install streamlit`)")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err}): choose another port with "
                              f"--port, or another address with --host") from None


def url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def serve(runs_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Check, print the URL, then become the Streamlit server (this call does not return)."""
    check(runs_dir, host, port)
    print(f"torchrepro serve: {url(host, port)} (runs under {runs_dir}; Ctrl-C stops the server)", flush=True)
    command = streamlit_command(runs_dir, host, port)
    os.execv(command[0], command)
