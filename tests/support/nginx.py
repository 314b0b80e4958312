"""A real nginx in front of test servers, running the site operators install (deploy/nginx).

nginx comes from Debian (`apt-get install nginx`), installed here when missing and when the
machine allows it (root, apt), as Chromium is (browser.py). On a host whose init starts
services, the package also starts the system's nginx; the tests do not use that one.

``NginxProcess`` writes a minimal main configuration into a folder of its own that includes
``deploy/nginx/ophydsite.conf`` with its ports, host addresses and paths replaced (each
replaced text must be in the file: the test runs the file operators install, not a copy),
and runs ``nginx -g 'daemon off;'`` as a child.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.child import PROJECT_ROOT, ChildProcess

NGINX = Path("/usr/sbin/nginx")
SITE = PROJECT_ROOT / "deploy" / "nginx" / "ophydsite.conf"
HOST = "ophyd.example.org"  # the site's server_name, kept in the test: clients send it as Host


def nginx_path() -> Path | None:
    """Debian's nginx (and openssl, for the test certificate), installing them if needed."""
    if NGINX.exists() and shutil.which("openssl"):
        return NGINX
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "nginx", "openssl"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=600)
    return NGINX if NGINX.exists() and shutil.which("openssl") else None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for HOST and 127.0.0.1 and its key, made by openssl for one test run."""
    cert, key = folder / "ophydsite.crt", folder / "ophydsite.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@dataclass(frozen=True)
class SitePorts:
    """Where the test's nginx listens and what it proxies to."""

    http: int
    https: int
    internal: int  # the Prometheus block
    servers: tuple[int, int]  # the two `serve` processes of the upstream
    bridge_metrics: int


def site_config(ports: SitePorts, folder: Path, cert: Path, key: Path) -> str:
    """deploy/nginx/ophydsite.conf for this test: loopback ports, files in ``folder``."""
    text = SITE.read_text()
    replacements = [
        # IPv6 wildcard listeners are not needed on loopback (and may be unavailable)
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{ports.http};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{ports.https} ssl;"),
        ("listen 127.0.0.1:9180;", f"listen 127.0.0.1:{ports.internal};"),
        ("127.0.0.1:8001", f"127.0.0.1:{ports.servers[0]}"),
        ("127.0.0.1:8002", f"127.0.0.1:{ports.servers[1]}"),
        ("127.0.0.1:9101", f"127.0.0.1:{ports.bridge_metrics}"),
        ("/etc/ssl/certs/ophydsite.crt", str(cert)),
        ("/etc/ssl/private/ophydsite.key", str(key)),
        ("/var/log/nginx/ophydsite.access.log", str(folder / "access.log")),
        ("/srv/ophydsite", str(folder / "srv")),
    ]
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"{SITE} no longer contains {old!r}: update tests/support/nginx.py")
        text = text.replace(old, new)
    return text


class NginxProcess(ChildProcess):
    """nginx with the deploy site, in a folder of its own; ready once its HTTPS port accepts."""

    label = "nginx"

    def __init__(self, folder: Path, ports: SitePorts) -> None:
        super().__init__()
        self.folder = folder
        self.ports = ports
        (folder / "srv" / "static").mkdir(parents=True, exist_ok=True)
        self.cert, key = self_signed_certificate(folder)
        (folder / "ophydsite.conf").write_text(site_config(ports, folder, self.cert, key))
        (folder / "nginx.conf").write_text(self._main_config())

    def _main_config(self) -> str:
        temp = "\n".join(f"    {kind}_temp_path {self.folder / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, workers would run as nobody and could not read the test's private folder.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        return (f"{user}worker_processes 1;\npid {self.folder / 'nginx.pid'};\nerror_log stderr warn;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
                f"{temp}\n    include {self.folder / 'ophydsite.conf'};\n}}\n")

    def command(self) -> list[str]:
        return [str(NGINX), "-e", "stderr", "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
                "-g", "daemon off;"]

    def start(self, timeout: float = 15.0) -> None:
        """Check the configuration (``nginx -t``), spawn nginx and wait until it accepts."""
        check = subprocess.run([*self.command()[:-2], "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused the configuration:\n{check.stderr}")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ports.https), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not come up:\n{self.stderr_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM) of the master and its workers; a killed master would leave
        its workers serving."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def access_log(self) -> str:
        try:
            return (self.folder / "access.log").read_text(errors="replace")
        except OSError:
            return ""
