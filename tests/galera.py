"""A private MariaDB Galera cluster on loopback, for the cluster tests.

Three `mariadbd` nodes, each with its own datadir, socket, client port and Galera ports (group
communication, incremental and full state transfer). The first is installed with
`mariadb-install-db` and bootstraps the cluster (`--wsrep-new-cluster`); the others start empty
and receive a full copy by rsync (SST), one at a time. The nodes run as the `mysql` user: the
rsync transfer refuses to work as root. Never the machine's shared server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import free_port

MARIADBD = "/usr/sbin/mariadbd"
PROVIDER_PATHS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")
NODE_COUNT = 3
# Timeouts shortened from Galera's defaults (5 s suspect, 15 s inactive) so a killed node is
# evicted in a few seconds, which the node-loss test waits out.
PROVIDER_OPTIONS = (
    "gcache.size=64M",
    "evs.keepalive_period=PT0.5S",
    "evs.inactive_check_period=PT0.5S",
    "evs.suspect_timeout=PT2S",
    "evs.inactive_timeout=PT4S",
    "evs.install_timeout=PT4S",
)


class NodeDown(Exception):
    """A node refused or could not run a query."""


def galera_missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if not Path(MARIADBD).exists():
        return f"{MARIADBD} is not installed"
    if provider() is None:
        return "the Galera provider (package galera-4) is not installed"
    for program in ("mariadb", "mariadb-install-db", "rsync", "wsrep_sst_rsync", "setpriv"):
        if shutil.which(program) is None:
            return f"`{program}` is not on PATH"
    if os.geteuid() != 0:
        return "starting nodes as the mysql user needs root"
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        return "there is no mysql user to run the nodes as"
    return None


def provider() -> str | None:
    return next((path for path in PROVIDER_PATHS if Path(path).exists()), None)


@dataclass
class GaleraNode:
    name: str
    root: Path
    port: int
    gcomm_port: int
    ist_port: int
    sst_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.root / self.name

    @property
    def error_log(self) -> Path:
        return self.root / f"{self.name}.err"

    def url(self, database: str = "") -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def start(self, cluster_address: str, *, new_cluster: bool = False) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        options = ";".join(
            (
                f"base_port={self.gcomm_port}",
                f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port}",
                f"ist.recv_addr=127.0.0.1:{self.ist_port}",
                *PROVIDER_OPTIONS,
            )
        )
        command = [
            # As mysql from the start, with a parent-death signal: if the test run itself is
            # killed, the kernel kills the node too (mariadbd switching user would clear it).
            "setpriv",
            "--reuid=mysql",
            "--regid=mysql",
            "--init-groups",
            "--pdeathsig=KILL",
            MARIADBD,
            "--no-defaults",
            "--user=mysql",
            f"--datadir={self.datadir}",
            f"--socket={self.root / self.name}.sock",
            f"--pid-file={self.root / self.name}.pid",
            f"--log-error={self.error_log}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M",
            # What Galera requires: row-based replication, interleaved auto-increment locks.
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
            "--default-storage-engine=InnoDB",
            "--max-connections=400",
            "--wsrep-on=ON",
            f"--wsrep-provider={provider()}",
            "--wsrep-cluster-name=booking-test",
            f"--wsrep-cluster-address={cluster_address}",
            f"--wsrep-node-name={self.name}",
            f"--wsrep-node-address=127.0.0.1:{self.gcomm_port}",
            f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            "--wsrep-sst-method=rsync",
            "--wsrep-slave-threads=2",
            f"--wsrep-provider-options={options}",
        ]
        if new_cluster:
            command.append("--wsrep-new-cluster")
        with (self.root / f"{self.name}.out").open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug: nothing is flushed or said goodbye to."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def query(self, sql: str, database: str = "") -> list[list[str]]:
        """Rows of `sql` as run by the mariadb client; NodeDown if it cannot run there."""
        done = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--user=root",
                "--connect-timeout=2",
                "--batch",
                "--skip-column-names",
                f"--execute={sql}",
                *([database] if database else []),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise NodeDown(f"{self.name}: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def sync(self) -> None:
        """Until this node has applied everything the cluster committed before now."""
        self.query("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1")

    def state(self) -> str | None:
        """wsrep_local_state_comment (Synced, Donor/Desynced, Joining, ...), None if down."""
        try:
            rows = self.query("SHOW STATUS LIKE 'wsrep_local_state_comment'")
        except NodeDown:
            return None
        return rows[0][1] if rows else None

    def wait_synced(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.state() != "Synced":
            if not self.running:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not synced in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no error log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class GaleraCluster:
    root: Path
    nodes: list[GaleraNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return "gcomm://" + ",".join(f"127.0.0.1:{node.gcomm_port}" for node in self.nodes)

    def start(self) -> None:
        first, *others = self.nodes
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={first.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        first.start(self.address, new_cluster=True)
        first.wait_synced()
        for node in others:  # one donor, one joiner at a time
            node.start(self.address)
            node.wait_synced()

    def restart(self, node: GaleraNode) -> None:
        """Start a killed node again; it rejoins and catches up (IST), not yet waited for."""
        node.start(self.address)

    def cluster_size(self, node: GaleraNode) -> int:
        rows = node.query("SHOW STATUS LIKE 'wsrep_cluster_size'")
        return int(rows[0][1])

    def wait_size(
        self, size: int, timeout: float = 60, nodes: list[GaleraNode] | None = None
    ) -> None:
        """Until every running node (of `nodes`) sees a component of `size` nodes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sizes = [self.cluster_size(n) for n in nodes or self.nodes if n.running]
            except NodeDown:
                sizes = []
            if sizes and all(s == size for s in sizes):
                return
            assert time.monotonic() < deadline, f"cluster size {sizes}, expected {size}"
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@contextlib.contextmanager
def galera_cluster() -> Iterator[GaleraCluster]:
    """Three nodes, started and synced; all killed and their files removed afterwards."""
    # Not under pytest's tmp_path: that is private to root, and the nodes run as mysql.
    root = Path(tempfile.mkdtemp(prefix="booking-galera-"))
    root.chmod(0o755)
    mysql = pwd.getpwnam("mysql")
    cluster = GaleraCluster(root)
    for index in range(1, NODE_COUNT + 1):
        node = GaleraNode(f"node{index}", root, free_port(), free_port(), free_port(), free_port())
        node.datadir.mkdir()
        cluster.nodes.append(node)
    for path in (root, *(node.datadir for node in cluster.nodes)):
        os.chown(path, mysql.pw_uid, mysql.pw_gid)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
