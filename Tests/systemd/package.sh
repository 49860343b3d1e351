#!/usr/bin/env bash
# The Debian package under a real systemd (Tests/systemd/container.sh:
# opt-in, SWARM_SYSTEMD_TESTS=1): built by scripts/package, installed with
# apt in a container whose root is a throw-away overlay, then upgraded while
# a swarm consumes, removed, purged and installed again. Prints the
# consumption gap and the messages handled twice of the in-place upgrade
# and of the restart debhelper does by default (BENCHMARKS.md).
writable_os=1
# shellcheck source=Tests/systemd/container.sh
source "$(dirname "$0")/container.sh"

# --- Two packages of this tree: X, and the same code as a higher version Y.
debs="$work/debs"
x=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
y="$x+upgrade1"
bash "$repo/scripts/package" --output "$debs" >"$work/package-x.log" 2>&1 || { tail -20 "$work/package-x.log"; exit 1; }
bash "$repo/scripts/package" --output "$debs" --version "$y" >"$work/package-y.log" 2>&1 || { tail -20 "$work/package-y.log"; exit 1; }
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

boot_container
# This machine's image forbids service actions during package operations
# (policy-rc.d exits 101, as container images do); the container stands for
# a host where they are allowed. (What the package does under such a policy:
# debian/swarmd.postinst.)
inside rm -f /usr/sbin/policy-rc.d
# The packages into the container's own /root (its /tmp is not the host's).
for v in "$x" "$y"; do
  inside sh -c "cat > /root/swarmd_${v}_${arch}.deb" < "$debs/swarmd_${v}_${arch}.deb"
done
unit=swarmd@orders.service
diagnose() {
  { inside systemctl status --no-pager "$unit" 2>&1 | head -12 | sed 's/^/    /'
    inside journalctl -u "$unit" -o cat -n 12 --no-pager 2>&1 | grep -v ' key=' | sed 's/^/    /'; } || true
}
apt_install() {
  # From /root, as an operator would (this script's working folder is not in the container).
  inside sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$1" >"$work/apt.log" 2>&1 && return 0
  tail -15 "$work/apt.log" | sed 's/^/    apt: /'
  return 1
}
prop() { inside systemctl show -P "$1" "$unit"; }

# 1. Install: files in place, the user made, nothing enabled or started.
check "apt install ./swarmd_${x}.deb" apt_install "swarmd_${x}_${arch}.deb"
check "the user swarm exists" inside getent passwd swarm
check "swarmd.service is installed but not enabled" bash -c "[ \"\$(nsenter -t $init -a systemctl is-enabled swarmd.service)\" = disabled ]"
check "no swarm was started" bash -c "! nsenter -t $init -a systemctl is-active --quiet swarmd.service"
check "/etc/swarmd/swarmd.toml is a conffile" bash -c "nsenter -t $init -a dpkg-query -W -f='\${Conffiles}' swarmd | grep -q /etc/swarmd/swarmd.toml"
check "swarmd --check alone checks the shipped file and names what is missing" \
  bash -c "nsenter -t $init -a swarmd --check 2>&1 | grep -q 'bootstrap.servers\" is required'"
check "swarmd --version is the package's" bash -c "nsenter -t $init -a swarmd --version | grep -qF 'swarmd $x '"
check "man pages and completions are found" bash -c "nsenter -t $init -a test -e /usr/share/bash-completion/completions/swarmctl && nsenter -t $init -a man -w swarmd.toml >/dev/null"
check "the Python kit imports from dist-packages" inside /usr/bin/python3 -c "import swarm_handler, sys; sys.exit(not swarm_handler.__file__.startswith('/usr/lib/python3/dist-packages/'))"
# shellcheck disable=SC2016 # Ruby's own $LOADED_FEATURES, not the shell's
check "the Ruby kit is required from vendor_ruby" inside ruby -e 'require "swarm_handler"; exit($LOADED_FEATURES.any? { |f| f.start_with?("/usr/lib/ruby/vendor_ruby/swarm_handler") })'
check "the Node.js kit imports from /usr/share/nodejs" inside node -e 'import("/usr/share/nodejs/swarm-handler/index.js").then((m) => process.exit(m.fail("x") === "fail x" ? 0 : 1))'

# 2. A broker (swarmd's development broker, another unit) and swarmd@orders on it.
inside systemd-run --quiet --unit=kafka /bin/sh -c 'sleep infinity | /usr/bin/swarmd broker --topic orders:6 > /run/kafka.address'
eventually 30 inside test -s /run/kafka.address || { echo "the broker did not start"; exit 1; }
bootstrap=$(inside head -1 /run/kafka.address)
inside bash -c "cat > /etc/swarmd/orders.toml" <<TOML
[supervisor]
nodes = 2
report_interval = 0.5
[kafka]
topics = ["orders"]
group_id = "orders"
[kafka.properties]
"bootstrap.servers" = "$bootstrap"
"session.timeout.ms" = 6000
[handler]
kind = "exec"
command = ["/bin/bash", "/usr/share/doc/swarmd/examples/handler.sh"]
batch_size = 20
commit_interval = 1
stderr_rate = 0
TOML
start=$SECONDS
check "systemctl enable --now $unit (returns at READY=1)" inside systemctl enable --now "$unit"
check "$unit active" test "$(prop ActiveState)" = active
echo "  READY after $((SECONDS - start)) s"
check "swarmctl --instance orders finds it" inside swarmctl --instance orders status

# 3. Load: 100 keyed messages a second from kcat, each handled key logged by the handler.
inside systemd-run --quiet --unit=producer /bin/bash -c \
  "i=0; while :; do for j in \$(seq 10); do echo \"k\$i:v\"; i=\$((i+1)); done; echo \$i > /run/produced; sleep 0.1; done | kcat -P -b $bootstrap -t orders -K: -X linger.ms=5"
handled_keys() { inside journalctl -u "$unit" -o cat --no-pager | grep -o ' key=k[0-9]*' | sort | uniq -c; }
count_handled() { handled_keys | wc -l; }
check "the swarm consumes (20 s of it)" eventually 120 bash -c "[ \$(nsenter -t $init -a journalctl -u $unit -o cat --no-pager | grep -c ' key=k') -gt 2000 ]"

# gap FROM [TO]: the longest time (s) between two handled messages from FROM (epoch
# seconds, journal time) to TO (default: the end), counting from FROM itself.
gap() {
  inside journalctl -u "$unit" -o short-unix --no-pager | awk -v from="$1" -v to="${2:-1e12}" '
    / key=k/ { t = $1 + 0; if (t < from || t > to) next; d = t - p; if (d > m) m = d; p = t }
    BEGIN { p = from } END { printf "%.2f\n", m }'
}
twice() { handled_keys | awk '$1 > 1 { n += $1 - 1 } END { print n + 0 }'; }

# 4. apt upgrade while it consumes: swarmd is re-executed in place, no node touched.
main=$(prop MainPID)
nodes=$(inside pgrep -P "$main" | sort | tr '\n' ' ')
assignments=$(inside journalctl -u "$unit" -o cat --no-pager | grep -c 'assignment changed' || true)
twice_before=$(twice)
t0=$(inside date +%s.%N)
check "apt install ./swarmd_${y}.deb" apt_install "swarmd_${y}_${arch}.deb"
check "apt said the swarm was upgraded in place" grep -q "swarmd@orders.service: swarmd (pid $main) upgraded in place" "$work/apt.log"
check "MainPID unchanged" test "$(prop MainPID)" = "$main"
check "every node's pid unchanged" test "$(inside pgrep -P "$main" | sort | tr '\n' ' ')" = "$nodes"
check "swarmctl --version reports $y" bash -c "nsenter -t $init -a swarmctl --version | grep -qF 'swarmctl $y '"
check "the running swarmd reports $y" bash -c "nsenter -t $init -a swarmctl -i orders status --json | grep -qF '\"version\":\"$y '"
check "consumption goes on" eventually 30 bash -c "[ \$(nsenter -t $init -a journalctl -u $unit -o cat --no-pager --since @$t0 | grep -c ' key=k') -gt 500 ]"
check "no node's assignment changed" test "$(inside journalctl -u "$unit" -o cat --no-pager | grep -c 'assignment changed' || true)" = "$assignments"
upgrade_gap=$(gap "$t0"); upgrade_twice=$(( $(twice) - twice_before ))
# The same measure over the 20 s before the upgrade: the swarm's own rhythm.
quiet_gap=$(gap "$(echo "$t0 - 20" | bc)" "$t0")
echo "figure: apt upgrade in place: longest gap between handled messages ${upgrade_gap} s (${quiet_gap} s in the 20 s before), handled twice ${upgrade_twice}"

# 5. The same upgrade as debhelper's default would do it: a restart of the unit.
twice_before=$(twice)
t1=$(inside date +%s.%N)
check "restart (debhelper's default) for comparison" inside systemctl restart "$unit"
check "consumption goes on after the restart" eventually 60 bash -c "[ \$(nsenter -t $init -a journalctl -u $unit -o cat --no-pager --since @$t1 | grep -c ' key=k') -gt 500 ]"
restart_gap=$(gap "$t1"); restart_twice=$(( $(twice) - twice_before ))
echo "figure: restart: longest gap between handled messages ${restart_gap} s, handled twice ${restart_twice}"

# 6. apt remove stops the swarm gracefully; everything produced was handled and committed.
inside systemctl stop producer
# What reached the broker (kcat may not have sent the last lines it was given).
produced=$(inside kcat -C -b "$bootstrap" -t orders -e -q -f '%k\n' | sort -u | wc -l)
echo "  produced: $produced distinct keys"
check "every produced message handled" eventually 60 bash -c "[ \$(nsenter -t $init -a journalctl -u $unit -o cat --no-pager | grep -o ' key=k[0-9]*' | sort -u | wc -l) -ge $produced ]"
files=$(inside dpkg -L swarmd | while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done)
check "apt remove" bash -c "nsenter -t $init -a env DEBIAN_FRONTEND=noninteractive apt-get remove -y swarmd > $work/remove.log 2>&1"
grep -iE 'swarm|stop' "$work/remove.log" | sed 's/^/  apt remove: /'
echo "  after apt remove: $(prop ActiveState) $(prop Result) $(prop SubState)"
check "the swarm stopped: inactive" test "$(prop ActiveState)" = inactive
check "the swarm stopped gracefully" bash -c "nsenter -t $init -a journalctl -u $unit -o cat --no-pager | tail -40 | grep -q 'swarmd stopped exit_status=0'"
check "apt purge" inside env DEBIAN_FRONTEND=noninteractive apt-get purge -y swarmd
left=""
for f in $files; do inside test -e "$f" && left="$left $f"; done
check "purge left no file of the package behind${left:+ (left:$left)}" test -z "$left"
check "purge kept the operator's own /etc/swarmd/orders.toml" inside test -f /etc/swarmd/orders.toml
check "purge kept the user (Debian Policy)" inside getent passwd swarm

# 7. Reinstall: the swarm starts again where it stopped (nothing handled twice: commits were complete).
t2=$(inside date +%s.%N)
check "apt install again" apt_install "swarmd_${y}_${arch}.deb"
check "systemctl start $unit again" inside systemctl start "$unit"
echo "kend:v" | inside kcat -P -b "$bootstrap" -t orders -K:
check "it consumes again (a new message handled)" eventually 60 bash -c "nsenter -t $init -a journalctl -u $unit -o cat --no-pager --since @$t2 | grep -q ' key=kend '"
check "nothing handled again after a graceful stop: only the new message" \
  test "$(inside journalctl -u "$unit" -o cat --no-pager --since "@$t2" | grep -c ' key=k' || true)" = 1
