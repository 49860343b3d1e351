#!/usr/bin/env python3
"""swarm's benchmarks, side by side with circus and supervisord in one run.

Run by hand (never in CI):  Benchmarks/run [--quick] [--only NAME ...]
Prints a Markdown report for BENCHMARKS.md. Ratios between tools measured in
the same run are what to compare: absolute numbers move with the machine.

Builds swarm in release mode, the trivial worker and the plain C consumer
with cc, and installs circus and supervisor from PyPI into a virtual
environment under .build-bench/. Every server listens on loopback or on Unix
sockets only.

Environment for one benchmark at a time: BENCH_KINDS (substrings, comma
separated) and BENCH_STRATEGIES (a substring) pick the handover rows; BENCH_LOG_LEVEL sets swarmd's log level
(default warning); BENCH_LOG_DIR keeps each handover row's swarmd log and
handler record there. BENCH_BROKERS (mock, tansu, or both comma separated;
default mock) picks the brokers of the consumer benchmark: Tansu is the
broker process the tests use (scripts/tansu installs it).
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
import queue

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, ".build-bench")
VENV = os.path.join(OUT, "venv")
WORKER = os.path.join(OUT, "worker")
C_CONSUMER = os.path.join(OUT, "c-consumer")
SWARMD = SWARMCTL = None


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def setup():
    global SWARMD, SWARMCTL
    os.makedirs(OUT, exist_ok=True)
    # What an operator installs: a release build with the Swift runtime linked in
    # statically (see README), in a build folder of its own.
    # SWARM_LIBRDKAFKA=system (scripts/setup) builds against Debian 12's 2.0.2 in a folder of its own.
    suffix = "-system" if os.environ.get("SWARM_LIBRDKAFKA") == "system" else ""
    build = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", os.path.join(REPO, ".build-static" + suffix)]
    sh(*build, cwd=REPO, stdout=subprocess.DEVNULL)
    bin_path = subprocess.check_output(build + ["--show-bin-path"], cwd=REPO, text=True).strip()
    SWARMD, SWARMCTL = os.path.join(bin_path, "swarmd"), os.path.join(bin_path, "swarmctl")
    sh("cc", "-O2", "-o", WORKER, os.path.join(REPO, "Benchmarks/worker.c"))
    sh("cc", "-O2", "-o", C_CONSUMER, os.path.join(REPO, "Benchmarks/c-consumer.c"), "-lrdkafka")
    if not os.path.exists(os.path.join(VENV, "bin/circusd")):
        sh(sys.executable, "-m", "venv", VENV)
        sh(os.path.join(VENV, "bin/pip"), "install", "-q", "circus", "supervisor")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


class Fifo:
    """Collects "<pid> <monotonic ns>" lines that workers write when they start."""

    def __init__(self, d):
        self.path = os.path.join(d, "starts")
        os.mkfifo(self.path)
        self.q = queue.Queue()
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.keep = os.open(self.path, os.O_WRONLY)  # never EOF
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        os.set_blocking(self.fd, True)
        with os.fdopen(self.fd, "r") as f:
            for line in f:
                pid, ns = line.split()
                self.q.put((int(pid), int(ns) / 1e9))

    def take(self, timeout=30):
        return self.q.get(timeout=timeout)

    def drain(self):
        while not self.q.empty():
            self.q.get()


def tree(pid):
    """`pid` and every process below it (a node and its exec handler)."""
    out, queue = [], [pid]
    while queue:
        p = queue.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    queue += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_ns(pid):
    """CPU time of every thread of `pid` so far, in nanoseconds (schedstat: exact, not in clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass
    return total


def proc_stat(pid):
    """(cpu seconds, context switches of all threads, rss bytes). CPU comes from schedstat, in
    nanoseconds: an idle supervisor uses a few clock ticks a minute, too few to count in ticks."""
    cpu = cpu_ns(pid) / 1e9
    switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, switches, rss


# --- The supervisors under test -------------------------------------------------

class Swarm:
    name = "swarm"

    def __init__(self, d, fifo, nodes, builtin_config=None):
        self.d = d
        self.sock = os.path.join(d, "swarmd.sock")
        cfg = os.path.join(d, "swarmd.toml")
        with open(cfg, "w") as f:
            # restart_reset_after = 0.5: every kill in the respawn benchmark is a
            # first failure (restarted at once), not a crash loop (backed off).
            f.write(builtin_config or f'[supervisor]\nnodes = {nodes}\nnode_command = ["{WORKER}"]\n'
                                      f'report_interval = 1\nrestart_reset_after = 0.5\n')
        env = dict(os.environ, BENCH_FIFO=fifo.path if fifo else "", SWARM_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"))
        self.p = subprocess.Popen([SWARMD, "--config", cfg, "--socket", self.sock], env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "swarmd.log"), "w"))
        self.pid = self.p.pid
        wait_for(lambda: self.status() is not None)

    def request(self, req):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.sock)
            s.sendall((json.dumps(req) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            return json.loads(data)
        except OSError:
            return None

    def status(self):
        r = self.request({"v": 1, "cmd": "status"})
        return r and r.get("status")

    def running(self):
        s = self.status()
        return [n for n in s["nodes"] if n["state"] == "running"] if s else []

    def worker_pids(self):
        return [n["pid"] for n in self.status()["nodes"] if n.get("pid")]

    def scale_cmd(self, n):
        return [SWARMCTL, "scale", str(n), "--no-wait", "--socket", self.sock]

    def status_cmd(self):
        return [SWARMCTL, "status", "--socket", self.sock]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)


class Circus:
    name = "circus"
    check_delay = 1.0  # circus's default

    def __init__(self, d, fifo, nodes):
        self.d = d
        self.ini = os.path.join(d, "circus.ini")
        with open(self.ini, "w") as f:
            f.write(f"""[circus]
check_delay = {self.check_delay}
endpoint = ipc://{d}/circus-ctl.sock
pubsub_endpoint = ipc://{d}/circus-pub.sock
stats_endpoint = ipc://{d}/circus-stats.sock
statsd = False
loglevel = WARNING

[watcher:worker]
cmd = {WORKER}
numprocesses = {nodes}
copy_env = True
""")
        env = dict(os.environ, BENCH_FIFO=fifo.path)
        self.p = subprocess.Popen([os.path.join(VENV, "bin/circusd"), self.ini], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.p.pid

    def ctl(self):
        return [os.path.join(VENV, "bin/circusctl"), "--endpoint", f"ipc://{self.d}/circus-ctl.sock"]

    def worker_pids(self):
        out = subprocess.check_output(self.ctl() + ["list", "worker"], text=True)
        return [int(x) for x in out.replace(",", " ").split()]

    def scale_cmd(self, n):
        return self.ctl() + ["incr", "worker", str(n - len(self.worker_pids()))]

    def reset(self, n):
        subprocess.run(self.ctl() + ["set", "worker", "numprocesses", str(n)], stdout=subprocess.DEVNULL)

    def status_cmd(self):
        return self.ctl() + ["status"]

    def stop(self):
        # circusd sometimes ignores a TERM that arrives after `incr` (seen with
        # 0.19 here); `circusctl quit` is its own way to stop.
        subprocess.run(self.ctl() + ["quit"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.p.wait(60)


class FastCircus(Circus):
    """circus polling its processes ten times a second (faster respawn, more idle wake-ups)."""
    name = "circus (check_delay 0.1 s)"
    check_delay = 0.1


class Supervisord:
    name = "supervisord"

    def __init__(self, d, fifo, nodes, autostart=True):
        self.d = d
        self.conf = os.path.join(d, "supervisord.conf")
        with open(self.conf, "w") as f:
            f.write(f"""[unix_http_server]
file = {d}/supervisor.sock
[supervisord]
nodaemon = true
logfile = {d}/supervisord.log
pidfile = {d}/supervisord.pid
loglevel = warn
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl = unix://{d}/supervisor.sock
[program:worker]
command = {WORKER}
numprocs = {nodes}
process_name = %(program_name)s_%(process_num)02d
autostart = {"true" if autostart else "false"}
autorestart = true
startsecs = 0
environment = BENCH_FIFO="{fifo.path}"
""")
        self.p = subprocess.Popen([os.path.join(VENV, "bin/supervisord"), "-c", self.conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.p.pid
        wait_for(lambda: os.path.exists(f"{d}/supervisor.sock"))

    def ctl(self):
        return [os.path.join(VENV, "bin/supervisorctl"), "-c", self.conf]

    def worker_pids(self):
        out = subprocess.run(self.ctl() + ["pid", "all"], capture_output=True, text=True).stdout
        return [int(x) for x in out.split() if x.isdigit() and int(x) > 0]

    def status_cmd(self):
        return self.ctl() + ["status"]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)


def wait_for(cond, timeout=60, step=0.0005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    raise TimeoutError("condition not met")


# --- Measurements -------------------------------------------------------------------

def started(cls, d, workers):
    """A supervisor of `cls` with `workers` workers, returned once all have exec'd."""
    fifo = Fifo(d)
    sup = cls(d, fifo, workers)
    for _ in range(workers):
        fifo.take()
    return sup, fifo


def bench_respawn(reps):
    rows = []
    for cls in (Swarm, Circus, FastCircus, Supervisord):
        with tempfile.TemporaryDirectory() as d:
            sup, fifo = started(cls, d, 1)
            time.sleep(1)
            exec_times, healthy_times = [], []
            for _ in range(reps):
                fifo.drain()
                victim = sup.worker_pids()[0]
                t0 = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                pid, t1 = fifo.take()
                exec_times.append(t1 - t0)
                if cls is Swarm:
                    wait_for(lambda: any(n["pid"] == pid for n in sup.running()))
                    healthy_times.append(time.monotonic() - t0)
                time.sleep(2.0)  # no tool's crash-loop or flapping protection may kick in
            sup.stop()
            rows.append((cls.name, median(exec_times), median(healthy_times) if healthy_times else None))
    print(f"\n### Respawn latency (SIGKILL to replacement; median of {reps})\n")
    print("| supervisor | exec'd | reports healthy | vs swarm (exec) |\n|---|---|---|---|")
    base = rows[0][1]
    for name, e, h in rows:
        print(f"| {name} | {ms(e)} | {ms(h) if h else '–'} | {e / base:.0f}× |")


def bench_scale_out(reps):
    rows = []
    for cls in (Swarm, Circus, Supervisord):
        times, healthy = [], []
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as d:
                if cls is Supervisord:
                    fifo = Fifo(d)
                    sup = Supervisord(d, fifo, 12, autostart=False)
                    cmd = sup.ctl() + ["start", "worker:*"]
                    need = 12
                else:
                    sup, fifo = started(cls, d, 1)
                    cmd = sup.scale_cmd(12)
                    need = 11
                time.sleep(0.5)
                t0 = time.monotonic()
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                last = max(fifo.take()[1] for _ in range(need))
                times.append(last - t0)
                if cls is Swarm:
                    wait_for(lambda: len(sup.running()) == 12)
                    healthy.append(time.monotonic() - t0)
                sup.stop()
        rows.append((cls.name, median(times), median(healthy) if healthy else None))
    print(f"\n### Scale-out 1 → 12 (the whole command, until all 12 exec'd; median of {reps})\n")
    print("| supervisor | how | all exec'd | all healthy |\n|---|---|---|---|")
    how = {"swarm": "`swarmctl scale 12 --no-wait`", "circus": "`circusctl incr worker 11`",
           "supervisord": "`supervisorctl start 'worker:*'` (numprocs=12 declared)"}
    for name, t, h in rows:
        print(f"| {name} | {how[name]} | {ms(t)} | {ms(h) if h else '–'} |")


def bench_control(reps):
    rows = []
    for cls in (Swarm, Circus, Supervisord):
        with tempfile.TemporaryDirectory() as d:
            sup, _ = started(cls, d, 12)
            time.sleep(1)
            times = []
            for _ in range(reps):
                t0 = time.monotonic()
                subprocess.run(sup.status_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.monotonic() - t0)
            rpc = []
            if cls is Swarm:
                for _ in range(reps):
                    t0 = time.monotonic()
                    sup.status()
                    rpc.append(time.monotonic() - t0)
            sup.stop()
            rows.append((cls.name, median(times), median(rpc) if rpc else None))
    print(f"\n### Control latency: a whole status command against 12 workers (median of {reps})\n")
    print("| supervisor | status command | request alone |\n|---|---|---|")
    for name, t, r in rows:
        print(f"| {name} | {ms(t)} | {ms(r) if r else '–'} |")


def bench_idle(seconds):
    rows = []
    for cls in (Swarm, Circus, FastCircus, Supervisord):
        with tempfile.TemporaryDirectory() as d:
            sup, _ = started(cls, d, 12)
            time.sleep(2)
            c0, s0, _ = proc_stat(sup.pid)
            time.sleep(seconds)
            c1, s1, rss = proc_stat(sup.pid)
            sup.stop()
            rows.append((cls.name, (c1 - c0) / seconds * 100, (s1 - s0) / seconds, rss))
    print(f"\n### Idle cost: the supervisor with 12 idle workers over {seconds} s\n")
    print("| supervisor | CPU | wake-ups/s | RSS |\n|---|---|---|---|")
    for name, cpu, wakes, rss in rows:
        print(f"| {name} | {cpu:.3f} % | {wakes:.1f} | {rss / 1e6:.1f} MB |")
    print("\nswarm's wake-ups are one sweep of its 12 nodes' reports per report_interval (1 s); "
          "no other timer ticks. RSS is measured after the benchmark's own status requests.")
    # A built-in Kafka node, idle on the embedded broker.
    with tempfile.TemporaryDirectory() as d:
        cfg = '[supervisor]\nnodes = 2\n[kafka.properties]\n"bootstrap.servers" = "embedded"\n"session.timeout.ms" = 6000\n'
        sw = Swarm(d, None, 2, builtin_config=cfg)
        wait_for(lambda: len(sw.running()) == 2)
        time.sleep(8)
        node_rss = [n["rss_bytes"] for n in sw.status()["nodes"]]
        sup_rss = proc_stat(sw.pid)[2]
        sw.stop()
    print(f"\nIdle built-in Kafka node (librdkafka consumer, sink handler): RSS {median(node_rss) / 1e6:.1f} MB each; "
          f"swarmd hosting the embedded broker: {sup_rss / 1e6:.1f} MB.")


def bench_stop(reps):
    rows = []
    for cls in (Swarm, Circus, Supervisord):
        times = []
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as d:
                sup, _ = started(cls, d, 12)
                time.sleep(0.5)
                t0 = time.monotonic()
                sup.stop()
                times.append(time.monotonic() - t0)
        rows.append((cls.name, median(times)))
    print(f"\n### Stop: TERM to exit with 12 idle workers (median of {reps})\n")
    print("| supervisor | stop |\n|---|---|")
    for name, t in rows:
        print(f"| {name} | {ms(t)} |")


# --- Kafka ----------------------------------------------------------------------------

class Broker:
    def __init__(self, topics):
        args = [SWARMD, "broker"] + sum((["--topic", f"{t}:{p}"] for t, p in topics.items()), [])
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.bootstrap = self.p.stdout.readline().decode().strip()

    def produce(self, topic, count, size, start=0, value=None):
        value = value or "x" * size
        data = "".join(f"k{i}:{value}\n" for i in range(start, start + count)).encode()
        subprocess.run(["kcat", "-P", "-b", self.bootstrap, "-t", topic, "-K", ":", "-X", "linger.ms=20"],
                       input=data, check=True)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


class TansuBroker(Broker):
    """Tansu 0.6, a broker process, in memory on a free loopback port (as the tests start it)."""
    BINARY = os.environ.get("SWARM_TANSU", "/usr/local/libexec/swarm-tests/tansu")

    def __init__(self, topics):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.bootstrap = f"127.0.0.1:{port}"
        self.p = subprocess.Popen([self.BINARY, "broker", "--listener-url", f"tcp://{self.bootstrap}",
                                   "--advertised-listener-url", f"tcp://{self.bootstrap}", "--storage-engine", "memory://tansu/"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def accepts():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(accepts, timeout=30, step=0.05)
        for t, n in topics.items():
            subprocess.run([self.BINARY, "topic", "create", "--broker", f"tcp://{self.bootstrap}", "--partitions", str(n), t],
                           check=True, stdout=subprocess.DEVNULL)

    def close(self):
        self.p.terminate()
        self.p.wait()


def brokers_selected():
    names = [b.strip() for b in os.environ.get("BENCH_BROKERS", "mock").split(",") if b.strip()]
    return [(n, TansuBroker if n == "tansu" else Broker) for n in names]


def swarm_config(bootstrap, nodes, topic, group, handler, report_interval=0.05):
    return f"""[supervisor]
nodes = {nodes}
report_interval = {report_interval}
report_timeout = 30
[kafka]
topics = ["{topic}"]
group_id = "{group}"
[kafka.properties]
"bootstrap.servers" = "{bootstrap}"
"session.timeout.ms" = 6000
"auto.offset.reset" = "earliest"
[handler]
{handler}
"""


def swarm_rate(broker, topic, count, nodes, handler, group, produce=None, every=0.01, cpu=None, with_handlers=False):
    """Messages/s of a swarm between 10 % and 90 % of `count` handled (the
    steady state), from its status `every` seconds, reports as often. With
    `cpu` (a list), appends the nodes' CPU nanoseconds per message in the same window."""
    with tempfile.TemporaryDirectory() as d:
        sw = Swarm(d, None, nodes, builtin_config=swarm_config(broker.bootstrap, nodes, topic, group, handler,
                                                               report_interval=max(every, 0.05)))
        if produce:
            # Every node holds partitions, paused (drained), while the messages are produced; then all
            # resume at once: no node starts early, and no producer competes with them for the cores.
            wait_for(lambda: (s := sw.status()) and all(n["partitions"] > 0 for n in s["nodes"]) and len(s["nodes"]) == nodes,
                     timeout=60, step=0.05)
            sw.request({"v": 1, "cmd": "drain"})
            wait_for(lambda: all(n["state"] == "drained" for n in sw.status()["nodes"]), timeout=60, step=0.05)
            produce()
            sw.request({"v": 1, "cmd": "resume"})
        marks = {}
        while "to" not in marks:
            s = sw.status()
            handled, now = (s["handled"] if s else 0), time.monotonic()
            pids = [n["pid"] for n in s["nodes"] if n.get("pid")] if s else []
            if with_handlers:  # the handlers' CPU is the node's too
                pids = [p for root in pids for p in tree(root)]
            if handled >= count // 10 and "from" not in marks:
                marks["from"] = (now, handled)
                cpu0 = sum(cpu_ns(p) for p in pids)
            if handled >= count * 9 // 10:
                marks["to"] = (now, handled)
                cpu1 = sum(cpu_ns(p) for p in pids)
            time.sleep(every)
        sw.stop()
    (t0, h0), (t1, h1) = marks["from"], marks["to"]
    if h1 <= h0 or t1 <= t0:
        raise RuntimeError(f"{count:,} messages were handled between two status samples {every} s apart: too few to time")
    if cpu is not None:
        cpu.append((cpu1 - cpu0) / (h1 - h0))
    return (h1 - h0) / (t1 - t0)


def bench_consumer(count, reps):
    for name, kind in brokers_selected():
        bench_consumer_on(name, kind, count, reps)


def bench_consumer_on(name, kind, count, reps):
    size = 16  # small messages: the most per partition under the mock's ~5 MiB cap, and the hardest case
    c_rates, s_rates, c_cpu, s_cpu = [], [], [], []
    for i in range(reps):
        broker = kind({"bench": 12})
        broker.produce("bench", count, size)
        out = subprocess.check_output([C_CONSUMER, broker.bootstrap, f"c{i}", "bench", str(count)], text=True)
        c_rates.append(float(out.split()[2]))
        c_cpu.append(float(out.split()[3]))
        # Status every 50 ms, as often as the node reports: polling faster would only take CPU from the node.
        s_rates.append(swarm_rate(broker, "bench", count, 1, 'kind = "sink"\nbatch_size = 500', f"s{i}",
                                  every=0.05, cpu=s_cpu))
        broker.close()
    c, s = median(c_rates), median(s_rates)
    cc, sc = median(c_cpu), median(s_cpu)
    ratio = median([b / a for a, b in zip(c_rates, s_rates)])  # each run's C and swarm share one broker
    ratios = ', '.join(f'{b / a:.2f}' for a, b in zip(c_rates, s_rates))
    runs = ', '.join(f'{a:,.0f}/{b:,.0f}' for a, b in zip(c_rates, s_rates))
    where = "mock broker" if name == "mock" else "Tansu (a broker process)"
    print(f"\n### Consumer speed: {count:,} messages of {size} bytes, 12 partitions, {where}, steady state (median of {reps})\n")
    print("| consumer | messages/s | CPU per message (all threads) |\n|---|---|---|")
    print(f"| plain C librdkafka consumer | {c:,.0f} | {cc:,.0f} ns |")
    print(f"| swarm, 1 node, `sink` | {s:,.0f} ({ratio * 100:.0f} % of C, median of the runs' ratios) | {sc:,.0f} ns ({sc / cc * 100:.0f} % of C) |")
    print(f"\nEach run, C / swarm messages/s: {runs}; swarm / C: {ratios}. CPU per message is the steadier comparison: "
          "a broker paces both consumers unevenly from run to run, but not what each spends on a message.")


def bench_scaling(count, rounds):
    cores = os.cpu_count()
    rates = {1: [], cores: []}
    used = {1: [], cores: []}
    ceiling = []
    blob = os.path.join(OUT, "zeros.bin")
    with open(blob, "wb") as f:
        f.write(bytes(200 << 20))

    def timed(n):
        t0 = time.monotonic()
        procs = [subprocess.Popen(["sha256sum", blob], stdout=subprocess.DEVNULL) for _ in range(n)]
        for p in procs:
            p.wait()
        return time.monotonic() - t0

    for _ in range(rounds):  # interleaved, so that a slow spell of a shared machine hits both sizes
        # What the machine itself gives: `cores` software SHA-256 processes against one.
        ceiling.append(cores * timed(1) / timed(cores))
        for nodes in (1, cores):
            broker = Broker({"cpu": 6})
            cpu = []
            # Polled every 100 ms: the measurement must not take CPU from the nodes it measures.
            r = swarm_rate(broker, "cpu", count, nodes, 'kind = "cpu"\ncpu_rounds = 200\nbatch_size = 100',
                           f"cpu{nodes}", produce=lambda b=broker: b.produce("cpu", count, 64), every=0.1, cpu=cpu)
            broker.close()
            rates[nodes].append(r)
            used[nodes].append(cpu[0] * r / 1e9)  # cores' worth of CPU the nodes got
    print(f"\n### Scaling on CPU-bound work: `cpu` handler, 200 rounds of SHA-256 per message, {count} messages "
          f"(median of {rounds} interleaved rounds)\n")
    # The speed-up is taken round by round (each round's two runs are minutes apart at most), then
    # the median: a shared machine's speed drifts by ±15 % over minutes, for both sizes alike.
    ratio = median([b / a for a, b in zip(rates[1], rates[cores])])
    print("| nodes | messages/s | vs 1 node | CPU the nodes got |\n|---|---|---|---|")
    print(f"| 1 | {median(rates[1]):,.0f} | 1.00× | {median(used[1]):.2f} cores |")
    print(f"| {cores} | {median(rates[cores]):,.0f} | {ratio:.2f}× (target ≥ {0.9 * cores:.1f}×) | {median(used[cores]):.2f} cores |")
    print(f"\nEach round, 1 node / {cores} nodes: " + ", ".join(f"{a:,.0f}/{b:,.0f} ({b / a:.2f}×)" for a, b in zip(rates[1], rates[cores])) + ". "
          f"The machine's own ceiling in the same rounds: {cores} `sha256sum` processes did "
          f"{median(ceiling):.2f}× the work of one (each round: {', '.join(f'{c:.2f}×' for c in ceiling)}).")
    os.unlink(blob)
    # exec against sink, on messages produced beforehand (6 partitions × 2.5 MB, under the mock's cap),
    # so that neither waits for a producer; then the batch size that makes exec fast.
    def rate(handler, n, group):
        broker = Broker({"x": 6})
        broker.produce("x", n, 64)
        r = swarm_rate(broker, "x", n, 1, handler, group)
        broker.close()
        return r
    exec_cmd = f'kind = "exec"\ncommand = ["{sys.executable}", "{REPO}/examples/handler.py"]'
    # Fixed sizes, whatever the mode: a pipelined exec handler drains 80,000 messages between two
    # status samples, too few to time; 200,000 × 64 B stays under the mock's cap.
    n = 200_000
    sink_rate = rate('kind = "sink"\nbatch_size = 500', n, "sink1")
    exec_rate = rate(f'{exec_cmd}\nbatch_size = 500', n, "exec1")
    print(f"\n`exec` handler (examples/handler.py, batches of 500): {exec_rate:,.0f} messages/s, "
          f"{exec_rate / sink_rate * 100:.0f} % of `sink` ({sink_rate:,.0f}/s) on 1 node, {n:,} messages produced beforehand.")
    print("\n| exec `batch_size` | messages/s |\n|---|---|")
    for batch in (1, 10, 100, 500):
        r = rate(exec_cmd + f"\nbatch_size = {batch}", {1: 20_000, 10: 100_000}.get(batch, n), f"exec-b{batch}")
        print(f"| {batch} | {r:,.0f} |")


def pss_bytes(pid):
    """Proportional set size: each shared page counted once across the processes sharing it."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def bench_scale_nodes(sizes, reps):
    """A swarm of built-in `sink` nodes on the embedded broker grown to each
    size: scale-out time until every node reports, then until the group
    settled (every node consuming, idle or waiting), and from then on
    `swarmctl status --json` latency, swarmd's idle CPU (the embedded broker
    serving n consumers included: it runs in swarmd) and RSS, and a node's
    PSS beside its RSS."""
    print("\n### Large swarms: built-in `sink` nodes on the embedded broker\n")
    print("| nodes | scale-out 1→N, all reporting | then the group settled | `swarmctl status --json` (median) | status bytes | swarmd idle CPU | swarmd RSS | node RSS / PSS (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            cfg = f"""[supervisor]
nodes = 1
report_interval = 1
report_timeout = 60
[kafka.properties]
"bootstrap.servers" = "embedded"
"session.timeout.ms" = 30000
[handler]
kind = "sink"
[embedded]
partitions = 4
"""
            sw = Swarm(d, None, 1, builtin_config=cfg)
            wait_for(lambda: len(sw.running()) == 1, timeout=60, step=0.05)
            t0 = time.monotonic()
            subprocess.run(sw.scale_cmd(n), check=True, stdout=subprocess.DEVNULL)
            wait_for(lambda: len(sw.running()) == n, timeout=300, step=0.01)
            scale_out = time.monotonic() - t0
            # Idle means the group settled: until then the embedded broker (in swarmd's
            # process) runs the rebalance of n members, and that is what would be measured.
            t1 = time.monotonic()
            wait_for(lambda: all(x.get("kafka") in ("consuming", "idle", "waiting") for x in sw.running()) and len(sw.running()) == n,
                     timeout=600, step=0.5)
            settle = time.monotonic() - t1
            times, size = [], 0
            for _ in range(reps):
                t = time.monotonic()
                # Exit 3 (not every node healthy yet) still prints the whole status: that is what is timed.
                r = subprocess.run([SWARMCTL, "status", "--json", "--socket", sw.sock], capture_output=True)
                if r.returncode not in (0, 3):
                    raise RuntimeError(f"swarmctl status exited {r.returncode}: {r.stderr.decode()}")
                out = r.stdout
                times.append(time.monotonic() - t)
                size = len(out)
            cpu0, _, _ = proc_stat(sw.pid)
            time.sleep(10)
            cpu1, _, rss = proc_stat(sw.pid)
            pids = sw.worker_pids()[:16]
            node_rss = median([proc_stat(p)[2] for p in pids])
            node_pss = median([pss_bytes(p) for p in pids])
            print(f"| {n} | {ms(scale_out)} | {settle:.1f} s | {ms(median(times))} | {size:,} | {(cpu1 - cpu0) / 10 * 100:.3f} % | "
                  f"{rss / 1e6:.1f} MB | {node_rss / 1e6:.1f} / {node_pss / 1e6:.1f} MB |")
            sw.stop()


def bench_memory(n, seconds):
    """What whole-tree memory accounting costs swarmd: `n` built-in nodes, each
    with a Python exec handler, on the embedded broker's synthetic traffic,
    with and without `memory_limit` (which turns the once-per-interval pass
    over /proc on); and a node's and a handler's RSS beside their PSS."""
    rows = {}
    for limit in (False, True):
        with tempfile.TemporaryDirectory() as d:
            cfg = f"""[supervisor]
nodes = {n}
report_interval = 1
report_timeout = 60
{'memory_limit = "1GiB"' if limit else ''}
[kafka.properties]
"bootstrap.servers" = "embedded"
"session.timeout.ms" = 30000
[handler]
kind = "exec"
command = ["{sys.executable}", "{REPO}/examples/handler.py"]
[embedded]
partitions = {n}
produce_rate = {n * 5}
"""
            sw = Swarm(d, None, n, builtin_config=cfg)
            # Every node holds a partition and has started its handler.
            wait_for(lambda: (s := sw.status()) and len(s["nodes"]) == n and all(x["handled"] > 0 for x in s["nodes"]),
                     timeout=300, step=0.2)
            time.sleep(2)
            cpu0, _, _ = proc_stat(sw.pid)
            time.sleep(seconds)
            cpu1, _, rss = proc_stat(sw.pid)
            s = sw.status()
            nodes = [x for x in s["nodes"] if x.get("processes")]
            node_rss = median([x["processes"][0]["rss_bytes"] for x in nodes])
            # PSS from /proc here: without memory_limit, status carries RSS only (no PSS pass).
            node_pss = median([pss_bytes(x["processes"][0]["pid"]) for x in nodes])
            h = [p for x in nodes for p in x["processes"][1:]]
            rows[limit] = ((cpu1 - cpu0) / seconds, rss, node_rss, node_pss,
                           median([p["rss_bytes"] for p in h]) if h else 0, median([pss_bytes(p["pid"]) for p in h]) if h else 0)
            sw.stop()
    off, on = rows[False], rows[True]
    print(f"\n### Whole-tree memory accounting: {n} built-in nodes, each with a Python exec handler ({seconds} s idle-ish, synthetic traffic)\n")
    print("| `memory_limit` | swarmd CPU | per report interval (1 s) | swarmd RSS |\n|---|---|---|---|")
    print(f"| unset (no accounting) | {off[0] * 100:.2f} % | {off[0] * 1000:.1f} ms | {off[1] / 1e6:.1f} MB |")
    print(f"| set (one pass over /proc per interval) | {on[0] * 100:.2f} % | {on[0] * 1000:.1f} ms | {on[1] / 1e6:.1f} MB |")
    print(f"\nOne node process: RSS {on[2] / 1e6:.1f} MB, PSS {on[3] / 1e6:.1f} MB; its Python handler: RSS {on[4] / 1e6:.1f} MB, PSS {on[5] / 1e6:.1f} MB (medians).")


# The kits' benchmark handlers. Each one meters itself, as the plain consumer
# does: between its 10 % and 90 % message (exact counts, its own monotonic
# clock) it writes "messages/s CPU-ns-per-message" to {out}, the CPU being its
# own and its node's (its parent), from schedstat. Timing a swarm from its
# status instead (reports every 50 ms at best) could not time 100,000
# messages at a million a second. Work "json+sha256": each value JSON-decoded
# and hashed.
KIT_METERS = {
    "python": """import os, time
def _cpu():
    t = 0
    for pid in (os.getpid(), os.getppid()):
        for task in os.listdir(f"/proc/{{pid}}/task"):
            try:
                with open(f"/proc/{{pid}}/task/{{task}}/schedstat") as f:
                    t += int(f.read().split()[0])
            except FileNotFoundError:
                pass
    return t
_seen, _marks = 0, []
def meter(batch):
    global _seen
    _seen += len(batch)
    if (not _marks and _seen >= {count} // 10) or (len(_marks) == 1 and _seen >= {count} * 9 // 10):
        _marks.append((time.monotonic(), _cpu(), _seen))
        if len(_marks) == 2:
            (t0, c0, n0), (t1, c1, n1) = _marks
            with open({out!r}, "w") as f:
                f.write(f"{{(n1 - n0) / (t1 - t0)}} {{(c1 - c0) / (n1 - n0)}}")
""",
    "ruby": """def _cpu
  [Process.pid, Process.ppid].sum do |pid|
    Dir.children("/proc/#{{pid}}/task").sum {{ |t| File.read("/proc/#{{pid}}/task/#{{t}}/schedstat").split[0].to_i rescue 0 }}
  end
end
$seen = 0
$marks = []
def meter(messages)
  $seen += messages.size
  return unless ($marks.empty? && $seen >= {count} / 10) || ($marks.size == 1 && $seen >= {count} * 9 / 10)
  $marks << [Process.clock_gettime(Process::CLOCK_MONOTONIC), _cpu, $seen]
  return unless $marks.size == 2
  (t0, c0, n0), (t1, c1, n1) = $marks
  File.write({out!r}, "#{{(n1 - n0) / (t1 - t0)}} #{{(c1 - c0).to_f / (n1 - n0)}}")
end
""",
    "node": """import {{ readdirSync, readFileSync, writeFileSync }} from "node:fs";
const _cpu = () => [process.pid, process.ppid].reduce((sum, pid) => sum + readdirSync(`/proc/${{pid}}/task`).reduce((s, t) => {{
  try {{ return s + Number(readFileSync(`/proc/${{pid}}/task/${{t}}/schedstat`, "latin1").split(" ")[0]); }} catch {{ return s; }}
}}, 0), 0);
let _seen = 0;
const _marks = [];
const meter = (batch) => {{
  _seen += batch.length;
  if ((_marks.length === 0 && _seen >= Math.floor({count} / 10)) || (_marks.length === 1 && _seen >= Math.floor({count} * 9 / 10))) {{
    _marks.push([performance.now() / 1000, _cpu(), _seen]);
    if (_marks.length === 2) {{
      const [[t0, c0, n0], [t1, c1, n1]] = _marks;
      writeFileSync({out!r}, `${{(n1 - n0) / (t1 - t0)}} ${{(c1 - c0) / (n1 - n0)}}`);
    }}
  }}
}};
""",
}
KIT_HANDLERS = {
    ("python", "none"): "import sys\nsys.path.insert(0, {lib!r})\nimport swarm_handler\n"
                        "def handle(batch):\n    meter(batch)\nswarm_handler.run(handle)\n",
    ("python", "json+sha256"): "import hashlib, json, sys\nsys.path.insert(0, {lib!r})\nimport swarm_handler\n"
                               "def handle(batch):\n    meter(batch)\n    for m in batch:\n        json.loads(m.value)\n        hashlib.sha256(m.value).digest()\n"
                               "swarm_handler.run(handle)\n",
    ("ruby", "none"): "$LOAD_PATH.unshift({lib!r})\nrequire 'swarm_handler'\n"
                      "class C < SwarmHandler::Consumer\n  def consume(messages)\n    meter(messages)\n  end\nend\nSwarmHandler.run(C)\n",
    ("ruby", "json+sha256"): "$LOAD_PATH.unshift({lib!r})\nrequire 'swarm_handler'\nrequire 'digest'\n"
                             "class C < SwarmHandler::Consumer\n  def consume(messages)\n    meter(messages)\n"
                             "    messages.each {{ |m| JSON.parse(m.raw_payload); Digest::SHA256.digest(m.raw_payload) }}\n  end\nend\nSwarmHandler.run(C)\n",
    ("node", "none"): "import {{ run }} from {lib!r};\nawait run((batch) => {{ meter(batch); }});\n",
    ("node", "json+sha256"): "import {{ createHash }} from 'node:crypto';\nimport {{ run }} from {lib!r};\n"
                             "await run((batch) => {{ meter(batch); for (const m of batch) {{ JSON.parse(m.value); createHash('sha256').update(m.value).digest(); }} }});\n",
}
KIT_LIBS = {"python": "contrib/python", "ruby": "contrib/ruby/lib", "node": os.path.join(REPO, "contrib/node/index.js")}
KIT_RUN = {"python": ["/usr/bin/python3"], "ruby": ["/usr/bin/env", "ruby"], "node": ["/usr/bin/env", "node"]}
KIT_EXT = {"python": "py", "ruby": "rb", "node": "mjs"}


def kit_handler(lang, work, count, out):
    """The program of a metered kit handler (see KIT_METERS), written to OUT."""
    meter = KIT_METERS[lang].format(count=count, out=out)
    body = KIT_HANDLERS[(lang, work)].format(lib=os.path.join(REPO, KIT_LIBS[lang]))
    # Node: imports first (the meter's own import is at its top).
    source = meter + body if lang != "node" else meter + body
    path = os.path.join(OUT, f"kit-{lang}-{work.replace('+', '-')}.{KIT_EXT[lang]}")
    with open(path, "w") as f:
        f.write(source)
    return KIT_RUN[lang] + [path]


def bench_python(count, reps, pipelines=(1, 2, 4)):
    """What a Python (or Ruby, or Node.js) user compares: the same messages
    through a plain Python confluent-kafka consumer and through one swarm
    node with each kit's handler (framing 2), one batch at a time (pipeline
    1) and pipelined; with no work per message and with real work (JSON
    decode and a SHA-256 of each value). Messages/s and CPU per message
    (node and handler together), each metered in the consuming process
    itself between its 10 % and 90 % message. There is no plain Ruby or
    Node.js Kafka consumer on this machine to compare those kits with."""
    if subprocess.run(["/usr/bin/python3", "-c", "import confluent_kafka"], capture_output=True).returncode != 0:
        sh("apt-get", "install", "-y", "-qq", "python3-confluent-kafka", stdout=subprocess.DEVNULL)
    os.makedirs(OUT, exist_ok=True)
    value = '{"id":"abcdefg"}'  # 16 bytes of JSON, for the rows that decode it
    kinds = []
    for bname, bkind in brokers_selected():
        # On Tansu (BENCH_BROKERS), the Python rows only: its first assignment takes ~20 s a run.
        for work in ("none", "json+sha256"):
            kinds.append((bname, bkind, work, "plain Python confluent-kafka consumer", None, None))
            for lang in (("python", "ruby", "node") if bname == "mock" else ("python",)):
                for p in (pipelines if lang == "python" and bname == "mock" else pipelines[:2]):
                    kinds.append((bname, bkind, work, f"swarm node + {lang} kit, pipeline {p}", lang, p))
    rates = {(k[0],) + k[2:4]: [] for k in kinds}
    cpus = {(k[0],) + k[2:4]: [] for k in kinds}
    for i in range(reps):
        for bname, bkind, work, name, lang, pipeline in kinds:  # interleaved, one broker each
            row = (bname, work, name)
            broker = bkind({"py": 4})
            broker.produce("py", count, 16, value=value)
            if lang is None:
                out = subprocess.check_output(["/usr/bin/python3", os.path.join(REPO, "Benchmarks/python-consumer.py"),
                                               broker.bootstrap, f"py{i}", "py", str(count), work], text=True).split()
            else:
                result = os.path.join(OUT, "kit-result")
                if os.path.exists(result):
                    os.unlink(result)
                command = ", ".join(f'"{a}"' for a in kit_handler(lang, work, count, result))
                handler = f'kind = "exec"\nprotocol = 2\nbatch_size = 500\npipeline = {pipeline}\ncommand = [{command}]'
                with tempfile.TemporaryDirectory() as d:
                    sw = Swarm(d, None, 1, builtin_config=swarm_config(broker.bootstrap, 1, "py", f"k{i}-{len(rates[row])}-{lang}{pipeline}", handler,
                                                                       report_interval=0.5))
                    wait_for(lambda: os.path.exists(result) and os.path.getsize(result) > 0, timeout=120, step=0.05)
                    sw.stop()
                with open(result) as f:
                    out = f.read().split()
            rates[row].append(float(out[0]))
            cpus[row].append(float(out[1]))
            broker.close()
            print(f"  run {i + 1}: {bname:6} {work:12} {name:48} {rates[row][-1]:>12,.0f}/s {cpus[row][-1]:>8,.0f} ns", flush=True)
    print(f"\n### Handlers: {count:,} messages of 16 bytes, 4 partitions, 1 consumer, framing 2, batch_size 500 (median of {reps})\n")
    print("| broker | work per message | consumer | messages/s (median) | vs plain Python | CPU per message | every run (messages/s) |\n|---|---|---|---|---|---|---|")
    for bname, _, work, name, _, _ in kinds:
        row = (bname, work, name)
        base = median(rates[(bname, work, "plain Python confluent-kafka consumer")])
        runs = ", ".join(f"{r:,.0f}" for r in rates[row])
        print(f"| {bname} | {work} | {name} | {median(rates[row]):,.0f} | {median(rates[row]) / base * 100:.0f} % | {median(cpus[row]):,.0f} ns | {runs} |")


def bench_upgrade(reps):
    """swarmd replaced in place (swarmctl upgrade) against a restart of the
    service, with 2 `sink` nodes consuming a steady stream from an external
    broker (`swarmd broker`): how long each takes to answer again, and the
    consumption gap the nodes see."""
    broker = Broker({"up": 4})
    stop = threading.Event()

    def produce():  # a steady trickle, so that a gap shows
        i = 0
        while not stop.is_set():
            broker.produce("up", 200, 16, start=i)
            i += 200
            time.sleep(0.05)
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    def start(d):
        sw = Swarm(d, None, 2, builtin_config=swarm_config(broker.bootstrap, 2, "up", "upgrade-bench", 'kind = "sink"'))
        wait_for(lambda: (s := sw.status()) and all(n["partitions"] == 2 for n in s["nodes"]), timeout=120, step=0.05)
        return sw

    def gap(sw, action):
        """Longest stretch without progress in the swarm's handled count around `action`, and the action's time."""
        samples, t_action = [], None
        t_end = time.monotonic() + 8
        began = time.monotonic()
        while time.monotonic() < t_end:
            if t_action is None and time.monotonic() - began > 1:
                t0 = time.monotonic()
                action()
                t_action = time.monotonic() - t0
            s = sw.status() if sw.p.poll() is None else None
            samples.append((time.monotonic(), s["handled"] if s else None))
            time.sleep(0.01)
        longest, last_t, last_h = 0, None, None
        for t, h in samples:
            if h is None:
                continue
            if last_h is None or h > last_h:
                if last_t is not None:
                    longest = max(longest, t - last_t)
                last_t, last_h = t, h
        return t_action, longest

    with tempfile.TemporaryDirectory() as d:
        sw = start(d)
        ups, gaps, base = [], [], []
        for _ in range(reps):
            base.append(gap(sw, lambda: None)[1])  # the same window without an upgrade: the traffic's own gaps
            t, g = gap(sw, lambda: subprocess.run([SWARMCTL, "upgrade", "--socket", sw.sock], check=True, stdout=subprocess.DEVNULL))
            ups.append(t)
            gaps.append(g)
        sw.stop()
    with tempfile.TemporaryDirectory() as d:
        sw = start(d)
        t0 = time.monotonic()
        sw.stop()
        sw = start(d)
        restart = time.monotonic() - t0
        sw.stop()
    stop.set()
    producer.join()  # its last kcat finishes before the broker goes
    broker.close()
    print(f"\n### Replacing swarmd: in-place upgrade against a restart (2 `sink` nodes, steady traffic, median of {reps})\n")
    print("| how | until swarmd answers as the new binary | longest gap in consumption |\n|---|---|---|")
    print(f"| `swarmctl upgrade` (same pid, nodes kept) | {ms(median(ups))} | {ms(median(gaps))}; the same window without an upgrade: {ms(median(base))} (progress as the status shows it, polled every 10 ms) |")
    print(f"| stop and start the service | {ms(restart)} until every node holds its partitions again (a graceful stop, a new group join and its rebalance) | the whole of it |")


def bench_ordering(count, reps):
    """An exec handler that fails 1 % of messages once (transiently), with
    `ordering = "partition"` (a failure pauses and rewinds its partition, the
    rest of its batch comes again) against `"none"` (retried alone after the
    batch), on messages produced beforehand: what keeping Kafka's order costs."""
    flaky = f'kind = "exec"\ncommand = ["{sys.executable}", "{REPO}/Benchmarks/flaky-handler.py"]\nbatch_size = 100\nretry_backoff = 0.1'
    rates = {"partition": [], "none": []}
    for i in range(reps):
        for mode in ("partition", "none"):  # interleaved, one broker each
            broker = Broker({"flaky": 6})
            broker.produce("flaky", count, 64)
            rates[mode].append(swarm_rate(broker, "flaky", count, 1, flaky + f'\nordering = "{mode}"', f"o-{mode}{i}", every=0.05))
            broker.close()
    p, n = median(rates["partition"]), median(rates["none"])
    print(f"\n### Ordering under failures: exec handler failing 1 % of messages once, {count:,} messages, 6 partitions, "
          f"1 node, `batch_size = 100`, `retry_backoff = 0.1` (median of {reps})\n")
    print("| `ordering` | messages/s |\n|---|---|")
    print(f"| `partition` (default: order kept) | {p:,.0f} ({p / n * 100:.0f} % of `none`) |")
    print(f"| `none` (retried out of line) | {n:,.0f} |")
    print("\nEach run, partition / none: " + ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(rates["partition"], rates["none"])) + ".")


def bench_http(reps, seconds):
    """The HTTP listener ([http] listen): a scrape of /metrics with 12 and 64
    worker nodes (latency, bytes), and swarmd's idle cost with 12 nodes with
    the listener on and off."""
    import http.client

    def config(nodes, port):
        text = f'[supervisor]\nnodes = {nodes}\nnode_command = ["{WORKER}"]\nreport_interval = 1\n'
        return text + (f'[http]\nlisten = "127.0.0.1:{port}"\n' if port else "")

    def free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def scrape(port, path="/metrics"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", path)
        body = c.getresponse().read()
        c.close()
        return body

    scrapes = []
    for n in (12, 64):
        with tempfile.TemporaryDirectory() as d:
            port = free_port()
            sw = Swarm(d, None, n, builtin_config=config(n, port))
            wait_for(lambda: len(sw.running()) == n, timeout=60)
            time.sleep(1.5)
            times, size = [], 0
            for _ in range(reps):
                t0 = time.monotonic()
                size = len(scrape(port))
                times.append(time.monotonic() - t0)
                time.sleep(0.05)
            sw.stop()
            scrapes.append((n, median(times), size))
    idle = []
    for on in (False, True):
        with tempfile.TemporaryDirectory() as d:
            port = free_port() if on else None
            sw = Swarm(d, None, 12, builtin_config=config(12, port))
            wait_for(lambda: len(sw.running()) == 12, timeout=60)
            if on:
                scrape(port)  # what a first scrape brings in stays resident
                scrape(port, "/")
            time.sleep(2)
            c0, s0, _ = proc_stat(sw.pid)
            time.sleep(seconds)
            c1, s1, rss = proc_stat(sw.pid)
            sw.stop()
            idle.append(("on, after a scrape and a page view" if on else "off", (c1 - c0) / seconds * 100, (s1 - s0) / seconds, rss))
    print("\n### HTTP listener: a scrape of /metrics, and swarmd's idle cost with it (median of %d)\n" % reps)
    print("| nodes | GET /metrics | bytes |\n|---|---|---|")
    for n, t, size in scrapes:
        print(f"| {n} | {ms(t)} | {size:,} |")
    print(f"\n| listener, 12 idle nodes, {seconds} s | CPU | wake-ups/s | RSS |\n|---|---|---|---|")
    for name, cpu, wakes, rss in idle:
        print(f"| {name} | {cpu:.3f} % | {wakes:.1f} | {rss / 1e6:.1f} MB |")


def bench_autoscale(count, reps):
    """A burst of `count` messages on a CPU-bound handler: time until the
    backlog is handled and group assignments, for a swarm fixed at min (1),
    fixed at max (4), and autoscaled from 1 (same broker, interleaved)."""
    kinds = {
        "fixed at 1": (1, ""),
        "fixed at 4": (4, ""),
        "autoscaled 1…4": (1, "[autoscale]\nenabled = true\nmin = 1\nmax = 4\ntarget_drain_seconds = 10\ncooldown_up = 10\ncooldown_down = 20\n"),
    }
    results = {k: [] for k in kinds}
    for i in range(reps):
        for name, (nodes, extra) in kinds.items():
            broker = Broker({"burst": 4})
            broker.produce("burst", count, 16)
            with tempfile.TemporaryDirectory() as d:
                cfg = swarm_config(broker.bootstrap, nodes, "burst", f"as{i}{nodes}{len(extra)}", 'kind = "cpu"\ncpu_rounds = 2000\nbatch_size = 100',
                                   report_interval=0.5) + "\n" + extra
                t0 = time.monotonic()
                os.environ["BENCH_LOG_LEVEL"] = "notice"  # the autoscaler's decisions are notices
                sw = Swarm(d, None, nodes, builtin_config=cfg)
                del os.environ["BENCH_LOG_LEVEL"]
                wait_for(lambda: (s := sw.status()) and s["handled"] >= count, timeout=600, step=0.2)
                elapsed = time.monotonic() - t0
                peak = sw.status()["wanted"]
                sw.stop()
                with open(os.path.join(d, "swarmd.log")) as f:
                    log = f.read()
                changes = log.count("] autoscale ")
            broker.close()
            results[name].append((elapsed, changes, peak))
    print(f"\n### Autoscaling: a burst of {count:,} messages, `cpu` handler (2000 rounds), 4 partitions, 2 cores (median of {reps})\n")
    print("| swarm | until the backlog is handled | size changes by the autoscaler |\n|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {median([r[0] for r in rows]):.1f} s | {median([r[1] for r in rows]):.0f} |")
    print("\nEach run (seconds, size changes): " + "; ".join(f"{k}: " + ", ".join(f"{r[0]:.1f}/{r[1]}" for r in v) for k, v in results.items()))


def handled_keys(record):
    """Keys the record handler answered ok, in order, repeats included."""
    try:
        with open(record) as f:
            return [line.split()[4] for line in f if line.endswith(" ok\n")]
    except FileNotFoundError:
        return []


def bench_handover(count, actions):
    """Per kind of membership change and assignment strategy: messages handled
    twice, and partition-seconds without an owner (no node of the swarm holds
    the partition, sampled from the status every 0.1 s, after the first full
    assignment). `count` keyed messages, 6 partitions, 3 nodes, the record
    handler at 1 ms a message, `actions` changes of each kind, 2 s apart."""
    handler = os.path.join(REPO, "Tests/SwarmTests/Fixtures/record-handler.py")
    kinds = ["no action", "node SIGKILL", "drain + resume", "scale 3 -> 4 -> 3", "restart one node", "reload, file unchanged", "reload, file changed"]
    strategies = {"eager (range,roundrobin)": '"partition.assignment.strategy" = "range,roundrobin"\n', "cooperative-sticky": '"partition.assignment.strategy" = "cooperative-sticky"\n',
                  "consumer (KIP-848)": '"group.protocol" = "consumer"\n'}
    only_kinds, only_strategies = os.environ.get("BENCH_KINDS"), os.environ.get("BENCH_STRATEGIES")
    print(f"\n### Membership changes: redeliveries and partitions without an owner, {count:,} messages, 6 partitions, 3 nodes, {actions} changes of each kind\n")
    print("| broker | strategy | change | handled twice | per change | never handled | partition-seconds without owner | per change |\n|---|---|---|---|---|---|---|---|", flush=True)
    for (bname, bkind), (strategy, prop) in [(b, s) for b in brokers_selected() for s in strategies.items()]:
        if only_strategies and only_strategies not in strategy:
            continue
        if bname == "tansu" and "group.protocol" in prop:
            continue  # Tansu 0.6 serves the classic protocol only
        for kind in kinds:
            if only_kinds and not any(k in kind for k in only_kinds.split(",")):
                continue
            broker = bkind({"redo": 6})
            broker.produce("redo", count, 16)
            with tempfile.TemporaryDirectory() as d:
                record = os.path.join(d, "record")
                os.environ["RECORD_FILE"], os.environ["SLOW_MS"] = record, "1"
                group = "ho" + str(abs(hash(bname + strategy + kind)) % 10**8)
                def config(batch):
                    return swarm_config(broker.bootstrap, 3, "redo", group, f'kind = "exec"\nbatch_size = {batch}\ncommit_interval = 1\n'
                                        f'command = ["/usr/bin/python3", "{handler}"]', report_interval=0.2).replace(
                                            '"auto.offset.reset" = "earliest"\n', '"auto.offset.reset" = "earliest"\n' + prop)
                cfg = config(50)
                if "group.protocol" in prop:  # the broker sets the session under KIP-848
                    cfg = cfg.replace('"session.timeout.ms" = 6000\n', "")
                sw = Swarm(d, None, 3, builtin_config=cfg)
                del os.environ["RECORD_FILE"], os.environ["SLOW_MS"]
                def handled():
                    return handled_keys(record)
                unowned = [0.0]
                sampling = [True]
                def owned():
                    s = sw.status()
                    if not s:
                        return None
                    return {(p["topic"], p["partition"]) for n in s["nodes"] for p in (n.get("partition_lag") or [])}
                wait_for(lambda: (o := owned()) is not None and len(o) == 6, timeout=120, step=0.1)
                def sample():
                    last = time.monotonic()
                    while sampling[0]:
                        time.sleep(0.1)
                        o = owned()
                        now = time.monotonic()
                        if o is not None:
                            unowned[0] += (6 - len(o)) * (now - last)
                        last = now
                t = threading.Thread(target=sample, daemon=True)
                t.start()
                wait_for(lambda: len(handled()) > count // 20, timeout=120, step=0.2)
                for i in range(actions if kind != "no action" else 0):
                    if kind == "node SIGKILL":
                        pids = [n["pid"] for n in sw.status()["nodes"] if n.get("pid")]
                        os.kill(pids[i % len(pids)], signal.SIGKILL)
                    elif kind == "drain + resume":
                        sw.request({"v": 1, "cmd": "drain", "slots": [i % 3]})
                        time.sleep(1.5)
                        sw.request({"v": 1, "cmd": "resume", "slots": [i % 3]})
                    elif kind.startswith("scale"):
                        sw.request({"v": 1, "cmd": "scale", "nodes": 4 if i % 2 == 0 else 3})
                    elif kind == "restart one node":
                        sw.request({"v": 1, "cmd": "restart", "slots": [i % 3]})
                    else:
                        if kind == "reload, file changed":
                            with open(os.path.join(d, "swarmd.toml"), "w") as f:
                                f.write(config(50 + (i + 1) % 2))
                        sw.request({"v": 1, "cmd": "reload"})
                    time.sleep(2)
                # Done when every key was handled, or when the swarm sits idle
                # with no lag for 15 s (what it skipped is then counted as never handled).
                idle = [time.monotonic(), 0]
                def settled():
                    n = len(set(handled()))
                    if n >= count:
                        return True
                    s = sw.status()
                    lag = sum((x.get("lag") or 0) for x in s["nodes"]) if s else 1
                    if n != idle[1] or lag > 0:
                        idle[0], idle[1] = time.monotonic(), n
                    return time.monotonic() - idle[0] > 15
                wait_for(settled, timeout=900, step=0.5)
                sampling[0] = False
                t.join()
                keys = handled()
                sw.stop()
                if os.environ.get("BENCH_LOG_DIR"):
                    # swarmd's log of this row, kept for reading (BENCH_LOG_LEVEL=info says the most).
                    shutil.copy(os.path.join(d, "swarmd.log"), os.path.join(os.environ["BENCH_LOG_DIR"], f"handover-{group}.log"))
                    shutil.copy(record, os.path.join(os.environ["BENCH_LOG_DIR"], f"handover-{group}.record"))
            broker.close()
            dup, gap, skipped = len(keys) - len(set(keys)), unowned[0], count - len(set(keys))
            per = kind == "no action"
            print(f"| {bname} | {strategy} | {kind} | {dup:,} | {'-' if per else f'{dup / actions:,.0f}'} | {skipped:,} | {gap:.1f} | {'-' if per else f'{gap / actions:.1f}'} |", flush=True)


def bench_churn(count, runs, seconds=40):
    """Back-to-back membership changes, the way an operator or an autoscaler
    makes them: `count` keyed messages produced steadily over 40 s onto 8
    partitions, 3 nodes with the record handler (exec, 1 ms a message,
    commit_interval = 1), one change every 1-3 s (seeded) for those 40 s.
    Plans: drain + resume only, scale only (2..4), mixed (drain, resume,
    scale, restart, node SIGKILL). Per run: messages handled twice (% of
    produced), never handled, partition-seconds without a consuming owner,
    and how long after the last change every message was handled. Every
    run's figure is printed. BENCH_PROTOCOLS and BENCH_PLANS pick rows
    (substrings), BENCH_RUNS the runs of each."""
    import random
    handler = os.path.join(REPO, "Tests/SwarmTests/Fixtures/record-handler.py")
    protocols = {
        "classic eager": '"partition.assignment.strategy" = "range,roundrobin"\n',
        "classic cooperative-sticky": '"partition.assignment.strategy" = "cooperative-sticky"\n',
        "consumer (KIP-848)": '"group.protocol" = "consumer"\n',
    }
    plans = ["drain only", "scale only", "mixed"]
    only_p, only_plans = os.environ.get("BENCH_PROTOCOLS"), os.environ.get("BENCH_PLANS")
    print(f"\n### Churn: a change every 1-3 s for {seconds} s while {count:,} keyed messages arrive (8 partitions, 3 nodes)\n")
    print("| broker | protocol | plan | run | changes | handled twice | % of produced | never handled | partition-s without owner | caught up after |\n"
          "|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for (bname, bkind), (proto, prop) in [(b, p) for b in brokers_selected() for p in protocols.items()]:
        if only_p and only_p not in proto:
            continue
        if bname == "tansu" and "group.protocol" in prop:
            continue  # Tansu serves the classic protocol only
        for plan in plans:
            if only_plans and only_plans not in plan:
                continue
            for run in range(runs):
                # A stable seed (Python's hash() of a string changes from process to process):
                # the same plan of changes in every run of this row, at the same moments.
                seed = zlib.crc32(f"{proto}/{plan}/{run}".encode())
                rng = random.Random(seed & 0xFFFF)
                broker = bkind({"churn": 8})
                with tempfile.TemporaryDirectory() as d:
                    record = os.path.join(d, "record")
                    os.environ["RECORD_FILE"], os.environ["SLOW_MS"] = record, "1"
                    group = f"churn{seed % 10**8}"
                    # BENCH_PIPELINE sets [handler] pipeline (swarm's default, 2, when unset).
                    pipeline = f'pipeline = {os.environ["BENCH_PIPELINE"]}\n' if os.environ.get("BENCH_PIPELINE") else ""
                    config = swarm_config(broker.bootstrap, 3, "churn", group, 'kind = "exec"\nbatch_size = 50\ncommit_interval = 1\n' + pipeline +
                                          f'command = ["/usr/bin/python3", "{handler}"]', report_interval=0.2).replace(
                                              '"auto.offset.reset" = "earliest"\n', '"auto.offset.reset" = "earliest"\n' + prop)
                    if "group.protocol" in prop:  # the broker sets the session under KIP-848
                        config = config.replace('"session.timeout.ms" = 6000\n', "")
                    sw = Swarm(d, None, 3, builtin_config=config)
                    del os.environ["RECORD_FILE"], os.environ["SLOW_MS"]
                    def owned():
                        s = sw.status()
                        if not s:
                            return None
                        return {(p["topic"], p["partition"]) for n in s["nodes"] if n.get("kafka") in ("consuming", "idle")
                                for p in (n.get("partition_lag") or [])}
                    wait_for(lambda: (o := owned()) is not None and len(o) == 8, timeout=120, step=0.1)
                    sampling, unowned = [True], [0.0]
                    def sample():
                        last = time.monotonic()
                        while sampling[0]:
                            time.sleep(0.1)
                            o, now = owned(), time.monotonic()
                            if o is not None:
                                unowned[0] += (8 - len(o)) * (now - last)
                            last = now
                    def produce():
                        per = count // 80
                        for i in range(80):
                            broker.produce("churn", per, 16, start=i * per)
                            time.sleep(seconds / 100)
                    sampler = threading.Thread(target=sample, daemon=True)
                    producer = threading.Thread(target=produce, daemon=True)
                    sampler.start(); producer.start()
                    start, changes, drained, size = time.monotonic(), 0, set(), 3
                    while time.monotonic() - start < seconds:
                        time.sleep(rng.uniform(1, 3))
                        kind = {"drain only": "drain", "scale only": "scale"}.get(plan) or rng.choice(["drain", "scale", "restart", "kill"])
                        if kind == "drain":
                            slot = rng.randrange(size)
                            sw.request({"v": 1, "cmd": "resume" if slot in drained else "drain", "slots": [slot]})
                            drained ^= {slot}
                        elif kind == "scale":
                            size = rng.choice([n for n in (2, 3, 4) if n != size])
                            drained = {s for s in drained if s < size}
                            sw.request({"v": 1, "cmd": "scale", "nodes": size})
                        elif kind == "restart":
                            sw.request({"v": 1, "cmd": "restart", "slots": [rng.randrange(size)]})
                        else:
                            pids = [n["pid"] for n in sw.status()["nodes"] if n.get("pid")]
                            os.kill(rng.choice(pids), signal.SIGKILL)
                        changes += 1
                    if drained:
                        sw.request({"v": 1, "cmd": "resume"})
                    producer.join()
                    last_change = time.monotonic()
                    total = (count // 80) * 80
                    try:
                        wait_for(lambda: len(set(handled_keys(record))) >= total, timeout=300, step=0.2)
                        caught = f"{time.monotonic() - last_change:.1f} s"
                    except TimeoutError:
                        caught = "not in 300 s"  # the row says so, with what was never handled
                    sampling[0] = False
                    sampler.join()
                    keys = handled_keys(record)
                    sw.stop()
                    if os.environ.get("BENCH_LOG_DIR"):
                        shutil.copy(os.path.join(d, "swarmd.log"), os.path.join(os.environ["BENCH_LOG_DIR"], f"churn-{group}.log"))
                        shutil.copy(record, os.path.join(os.environ["BENCH_LOG_DIR"], f"churn-{group}.record"))
                broker.close()
                dup, skipped = len(keys) - len(set(keys)), total - len(set(keys))
                print(f"| {bname} | {proto} | {plan} | {run + 1} | {changes} | {dup:,} | {100 * dup / total:.1f} % | {skipped:,} | {unowned[0]:.1f} | {caught} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and shorter windows")
    ap.add_argument("--smoke", action="store_true",
                    help="every section once at its smallest: seconds each, figures meaningless; "
                         ".ci/run runs it so that a change that breaks a benchmark fails CI")
    ap.add_argument("--only", nargs="*", default=[], help="respawn scale control idle stop consumer scaling ordering nodes memory python upgrade http autoscale handover (alias: redelivery) churn; templateunits (opt-in: SWARM_SYSTEMD_TESTS=1, root)")
    a = ap.parse_args()
    setup()
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    if a.smoke:
        # One row of each of the sections that loop over strategies and plans.
        os.environ.setdefault("BENCH_STRATEGIES", "eager")
        os.environ.setdefault("BENCH_PROTOCOLS", "classic eager")
        os.environ.setdefault("BENCH_PLANS", "mixed")
        os.environ.setdefault("BENCH_KINDS", "drain")
    print(f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    client = subprocess.run([SWARMD, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"`Benchmarks/run{' --' + mode if mode != 'full' else ''}` ({client}) on {platform.node()}: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, {platform.release()}; "
          f"circus and supervisord from PyPI in the same run.")
    want = lambda n: not a.only or n in a.only
    runs = os.environ.get("BENCH_RUNS")
    # Each section's arguments: (full, --quick, --smoke).
    sections = [
        ("respawn", bench_respawn, (21,), (7,), (1,)),
        ("scale", bench_scale_out, (7,), (3,), (1,)),
        ("control", bench_control, (21,), (7,), (2,)),
        ("idle", bench_idle, (60,), (10,), (2,)),
        ("stop", bench_stop, (7,), (3,), (1,)),
        ("consumer", bench_consumer, (1_200_000, 5), (400_000, 1), (200_000, 1)),
        ("scaling", bench_scaling, (60_000, 5), (20_000, 2), (20_000, 1)),
        ("ordering", bench_ordering, (60_000, 3), (20_000, 1), (4_000, 1)),
        ("nodes", bench_scale_nodes, ((16, 64, 256), 21), ((16, 64), 7), ((4,), 2)),
        ("memory", bench_memory, (64, 30), (16, 10), (4, 2)),
        ("python", bench_python, (100_000, 5), (100_000, 1), (4_000, 1, (2,))),
        ("upgrade", bench_upgrade, (7,), (3,), (1,)),
        ("http", bench_http, (21, 30), (7, 10), (2, 2)),
        ("handover", bench_handover, (20_000, 6), (10_000, 4), (2_000, 1)),
        ("autoscale", bench_autoscale, (20_000, 3), (10_000, 1), (2_000, 1)),
        ("churn", bench_churn, (30_000, int(runs or 3)), (30_000, int(runs or 1)), (2_000, 1, 8)),
    ]
    aliases = {"python": ["handlers"], "handover": ["redelivery"]}
    for name, bench, full, quick, smoke in sections:
        if want(name) or any(x in a.only for x in aliases.get(name, [])):
            bench(*{"full": full, "quick": quick, "smoke": smoke}[mode])
        if name == "http" and "templateunits" in a.only:
            # Opt-in only (a real systemd in a container, root): never part of a plain run.
            subprocess.run(["bash", os.path.join(REPO, "Benchmarks/template-units.sh"), str(3 if a.quick else 7)], check=False)


if __name__ == "__main__":
    main()
