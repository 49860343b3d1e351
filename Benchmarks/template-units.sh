#!/usr/bin/env bash
# The peer operators reach for first on a systemd host: a template unit
# (worker@.service, Restart=always) started N times, measured under a real
# systemd (Tests/systemd/container.sh) the way Benchmarks/bench.py measures
# swarm: respawn after SIGKILL, scale-out 0 -> 12, and the status of all.
# RestartSec=0 (systemd's default is 100 ms), so that systemd's own latency
# is what is measured. Opt-in (SWARM_SYSTEMD_TESTS=1); Benchmarks/run
# --only templateunits runs it. Prints a Markdown table.
reps=${1:-7}
# shellcheck source=Tests/systemd/container.sh
source "$(dirname "$0")/../Tests/systemd/container.sh"
worker="$repo/.build/template-worker"
cc -O2 -o "$worker" "$repo/Benchmarks/worker.c"
cat > "$units/worker@.service" <<UNIT
[Unit]
Description=benchmark worker %i
[Service]
ExecStart=$worker
Restart=always
RestartSec=0
UNIT
boot_container
inside python3 - "$reps" <<'PY'
import os, statistics, subprocess, sys, time
reps = int(sys.argv[1])
workers = [f"worker@{i}" for i in range(1, 13)]

def show(unit, prop):
    return subprocess.run(["systemctl", "show", "-P", prop, unit], capture_output=True, text=True).stdout.strip()

def ms(seconds):
    return f"{seconds * 1000:.1f} ms"

# Scale-out 0 -> 12: from the start command until the last worker exec'd
# (ExecMainStartTimestampMonotonic, the same clock as time.monotonic()).
scale = []
for _ in range(reps):
    t0 = time.monotonic()
    subprocess.run(["systemctl", "start", *workers], check=True)
    last = max(int(show(w, "ExecMainStartTimestampMonotonic")) for w in workers) / 1e6
    scale.append(last - t0)
    subprocess.run(["systemctl", "stop", *workers], check=True)
    time.sleep(1)

# Respawn: SIGKILL of the main process to the replacement's exec.
subprocess.run(["systemctl", "start", "worker@1"], check=True)
respawn = []
for _ in range(reps):
    pid = int(show("worker@1", "MainPID"))
    t0 = time.monotonic()
    os.kill(pid, 9)
    while True:
        p = int(show("worker@1", "MainPID") or 0)
        if p and p != pid:
            break
        time.sleep(0.001)
    respawn.append(int(show("worker@1", "ExecMainStartTimestampMonotonic")) / 1e6 - t0)
    time.sleep(2.5)  # no start limit (5 in 10 s) may kick in

# Status of all 12.
subprocess.run(["systemctl", "start", *workers], check=True)
status = []
for _ in range(reps * 3):
    t0 = time.monotonic()
    subprocess.run(["systemctl", "status", "--no-pager", "worker@*"], capture_output=True)
    status.append(time.monotonic() - t0)

print(f"\n### A template unit under systemd (worker@.service, Restart=always, RestartSec=0; median of {reps})\n")
print("| what | template units |\n|---|---|")
print(f"| respawn (SIGKILL to the replacement's exec) | {ms(statistics.median(respawn))} |")
print(f"| scale-out 0 -> 12 (until the last exec) | {ms(statistics.median(scale))} |")
print(f"| status of 12 (`systemctl status 'worker@*'`) | {ms(statistics.median(status))} |")
PY
