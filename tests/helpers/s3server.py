"""A local S3-compatible server for the tests: moto's ThreadedMotoServer (a real HTTP server).

The server runs in a child process (so that it never waits for the test
process's interpreter lock while a test is blocked in a C call that talks
to it).  ``stop()`` closes its HTTP listener and ``start()`` opens it again
on the same port: the objects live in the child's memory and survive, like
a real server's disks across a restart.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pyarrow.fs as pafs

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_CHILD = r"""
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer

def serve(port):
    for _ in range(100):
        try:
            s = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            s.start()
            return s
        except OSError:
            time.sleep(0.1)
    raise SystemExit("cannot bind port %d" % port)

server = serve(0)
port = server.get_host_and_port()[1]
print(port, flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "stop" and server is not None:
        server.stop(); server = None
    elif cmd == "start" and server is None:
        server = serve(port)
    elif cmd == "quit":
        break
    print("ok", flush=True)
if server is not None:
    server.stop()
"""


class S3Server:
    def __init__(self) -> None:
        for k, v in CREDENTIALS.items():
            os.environ.setdefault(k, v)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        self.endpoint = f"127.0.0.1:{self.port}"
        self.running = True

    def _command(self, cmd: str) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(cmd + "\n")
        self._proc.stdin.flush()
        if cmd != "quit":
            assert self._proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        """Take the server down (connections are refused; the objects are kept)."""
        if self.running:
            self._command("stop")
            self.running = False

    def start(self) -> None:
        """Bring it back on the same port."""
        if not self.running:
            self._command("start")
            self.running = True

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._command("quit")
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            endpoint_override=self.endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True,
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str | None = None) -> str:
        """Create a new bucket; returns its name."""
        name = name or f"bkt-{secrets.token_hex(4)}"
        self.filesystem().create_dir(name)
        return name

    def uri(self, bucket: str, prefix: str = "store") -> str:
        return f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}&scheme=http"
