#!/usr/bin/env bash
# swarmd as a Type=notify service with WatchdogSec= under a real systemd
# (Tests/systemd/container.sh: opt-in, SWARM_SYSTEMD_TESTS=1), and the
# shipped hardened unit.
# shellcheck source=Tests/systemd/container.sh
source "$(dirname "$0")/container.sh"

# --- The units under test: swarmd (a test node), and the shipped unit.
cat > "$units/swarmd.service" <<UNIT
[Unit]
Description=swarm under test
[Service]
Type=notify
NotifyAccess=main
WatchdogSec=2s
Environment=TEST_NODE_MODE=slowstart SWARMD_SOCKET=/run/swarmd/swarmd.sock
ExecStart=$bin/swarmd --nodes 2 -- /bin/bash $repo/Tests/SwarmTests/Fixtures/test-node.sh
ExecReload=/bin/kill -HUP \$MAINPID
KillMode=mixed
TimeoutStopSec=20s
Restart=on-failure
RestartSec=0.5s
RuntimeDirectory=swarmd
UNIT
# The shipped, hardened unit as it is, its paths pointed at this build.
sed -e "s|/usr/local/bin/swarmd|$bin/swarmd|g" -e "s|/usr/local/bin/swarmctl|$bin/swarmctl|g" \
  "$repo/contrib/swarmd.service" > "$units/swarmd-shipped.service"

boot_container
prop() { inside systemctl show -P "$1" swarmd; }
diagnose() {  # after a failed check: what systemd and the journal say
  inside systemctl status --no-pager swarmd 2>&1 | head -12 | sed 's/^/    /'
  inside journalctl -u swarmd -o cat -n 8 --no-pager 2>&1 | sed 's/^/    /'
}

# 1. Active only after READY=1, which comes after every node's first report (1.5 s late).
start=$SECONDS
inside systemctl start swarmd
check "systemctl start waited for READY=1 (>= 1 s)" test $((SECONDS - start)) -ge 1
check "unit active" test "$(prop ActiveState)" = active
check "swarmd logged its readiness" bash -c "nsenter -t $init -a journalctl -u swarmd -o cat | grep -q 'swarm ready: all 2 nodes consume'"

# 2. STATUS= in systemctl status.
check "systemctl status shows swarmd's STATUS line" eventually 10 bash -c "nsenter -t $init -a systemctl status swarmd | grep -q 'Status: \"2/2 nodes consuming'"

# 3. TTIN to the main process adds a node.
inside systemctl kill --kill-whom=main -s SIGTTIN swarmd
check "TTIN through systemctl kill adds a node" eventually 15 bash -c "nsenter -t $init -a $bin/swarmctl status --json | grep -q '\"wanted\":3'"

# 4. reload: reloading -> active.
inside systemctl reload swarmd
check "reload ends active" eventually 20 bash -c "[ \"\$(nsenter -t $init -a systemctl show -P ActiveState swarmd)\" = active ]"
check "reload seen by swarmd (an unchanged file: nothing replaced)" eventually 20 bash -c "nsenter -t $init -a journalctl -u swarmd -o cat | grep -q 'configuration reloaded: unchanged, nothing to do'"

# 5. A frozen loop: the watchdog kills swarmd, systemd restarts it, no old node survives.
old_main=$(prop MainPID)
old_nodes=$(inside pgrep -P "$old_main" | tr '\n' ' ')
inside kill -STOP "$old_main"
check "watchdog restarted swarmd" eventually 30 bash -c "p=\$(nsenter -t $init -a systemctl show -P MainPID swarmd); [ \"\$p\" != 0 ] && [ \"\$p\" != $old_main ]"
check "watchdog timeout logged" bash -c "nsenter -t $init -a journalctl -u swarmd -o cat | grep -qi 'watchdog timeout'"
check "no node of the old swarm survives" bash -c "for p in $old_nodes; do nsenter -t $init -a kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
check "the new swarm comes up" eventually 30 bash -c "[ \"\$(nsenter -t $init -a systemctl show -P ActiveState swarmd)\" = active ]"

# 6. stop waits for the graceful stop and ends inactive with result success.
inside systemctl stop swarmd
check "stopped: inactive" test "$(prop ActiveState)" = inactive
check "stopped: result success" test "$(prop Result)" = success
check "graceful stop logged" bash -c "nsenter -t $init -a journalctl -u swarmd -o cat | grep -q 'swarmd stopped exit_status=0'"
check "journalctl filters one slot by its native field" \
  bash -c "nsenter -t $init -a journalctl -u swarmd SWARM_SLOT=1 -o cat | grep -q 'node starting -> running'"

# 7. The shipped unit (contrib/swarmd.service, hardened), its user from contrib/sysusers.d.
inside systemd-sysusers "$repo/contrib/sysusers.d/swarmd.conf"
write_config() {  # write_config extra-line
  nsenter -t "$init" -a bash -c "mkdir -p /etc/swarmd && cat > /etc/swarmd/swarmd.toml" <<TOML
[supervisor]
nodes = 2
report_interval = 0.5
$1
[kafka]
topics = ["events"]
[kafka.properties]
"bootstrap.servers" = "embedded"
"session.timeout.ms" = 6000
[handler]
kind = "cpu"
[embedded]
partitions = 4
produce_rate = 200
TOML
}
shipped() { inside systemctl show -P "$1" swarmd-shipped; }
write_config ""
check "the shipped unit starts (ExecStartPre --check, then READY=1)" inside systemctl start swarmd-shipped
check "the shipped unit is active" test "$(shipped ActiveState)" = active
check "swarmd runs as the sysusers user" bash -c "[ \"\$(nsenter -t $init -a ps -o user= -p \$(nsenter -t $init -a systemctl show -P MainPID swarmd-shipped))\" = swarm ]"
check "its nodes consume under the sandbox" eventually 30 bash -c "nsenter -t $init -a $bin/swarmctl --socket /run/swarmd/swarmd.sock status | grep -q '2/2 nodes running'"
write_config "kill_timeout = -1"
check "systemctl reload fails on a broken file (ExecReload=swarmctl reload)" bash -c "! nsenter -t $init -a systemctl reload swarmd-shipped"
check "and the swarm keeps running" test "$(shipped ActiveState)" = active
write_config ""
inside systemctl stop swarmd-shipped
write_config "kill_timeout = -1"
check "a broken file fails the start (ExecStartPre=swarmd --check)" bash -c "! nsenter -t $init -a systemctl start swarmd-shipped"
check "the failed start names the file and line" bash -c "nsenter -t $init -a journalctl -u swarmd-shipped -o cat | grep -q 'swarmd.toml:4: \\[supervisor\\] kill_timeout'"

