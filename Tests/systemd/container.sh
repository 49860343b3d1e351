#!/usr/bin/env bash
# A real systemd to run units under: this machine's own systemd booted by
# systemd-nspawn as a container's init. Sourced by Tests/systemd/run-under-systemd.sh
# (the opt-in test) and Benchmarks/template-units.sh (the opt-in peer benchmark).
#
# Opt-in only (SWARM_SYSTEMD_TESTS=1), never part of scripts/test or CI: it
# creates cgroups on the machine it runs on. It starts systemd from a child
# cgroup of its own (never the root cgroup: systemd would then move every
# process of the machine into cgroups of its own), checks before and after
# that no process outside its own tree changed cgroup, and cleans up on
# every exit path.
#
# Gives the caller: $repo, $bin (this build's binaries), $work, $units (write
# units there before boot_container), check, eventually, and after
# boot_container: $init and inside (a command in the container). The root is
# a tmpfs with the host's /usr mounted read-only (--volatile=yes). A caller
# that installs packages in the container sets writable_os=1 first: /usr,
# /etc and /var are then the host's under an overlay whose writes go to a
# temporary folder that goes with the container (nspawn refuses
# --volatile=overlay for the host's own root).
set -euo pipefail

if [ "${SWARM_SYSTEMD_TESTS:-}" != 1 ]; then
  echo "skipped: set SWARM_SYSTEMD_TESTS=1 to run under a real systemd (root, systemd-nspawn)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
command -v systemd-nspawn >/dev/null || { apt-get update -qq; apt-get install -y -qq systemd-container >/dev/null; }
source scripts/setup
swift build --product swarmd >/dev/null
swift build --product swarmctl >/dev/null
# shellcheck disable=SC2034  # for the scripts that source this one
bin=$(swift build --show-bin-path)
swift_root=$(dirname "$(dirname "$(dirname "$(command -v swift)")")")

work=$(mktemp -d /tmp/swarm-systemd.XXXXXX)
name=swarm-nspawn-$$
passed=0 failed=0
cgroups=()
nspawn_pid=""

# --- Cgroups: note who is where, then move this script into children of its own.
snapshot() {  # pid and cgroup of every process not in this script's tree, one line each
  local mine
  mine=" $(ps -o pid= --ppid $$ | tr '\n' ' ') $$ $BASHPID "
  for d in /proc/[0-9]*; do
    local p=${d#/proc/}
    case "$mine" in *" $p "*) continue ;; esac
    [ "$(awk '/^PPid/{print $2}' "$d/status" 2>/dev/null)" = "$$" ] && continue
    echo "$p $(tr '\n' ';' < "$d/cgroup" 2>/dev/null)"
  done | sort
}
snapshot > "$work/before"
while read -r line; do
  controller=$(echo "$line" | cut -d: -f2)
  path=$(echo "$line" | cut -d: -f3)
  case "$controller" in
    "") root=/sys/fs/cgroup/unified; [ -d "$root" ] || root=/sys/fs/cgroup ;;
    name=systemd) root=/sys/fs/cgroup/systemd ;;
    *) continue ;;
  esac
  [ -d "$root$path" ] || continue
  mkdir -p "$root$path/$name"
  echo $$ > "$root$path/$name/cgroup.procs"
  cgroups+=("$root$path/$name")
done < /proc/self/cgroup

cleanup() {
  set +e
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
    kill -TERM "$nspawn_pid"
    for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  # Leave the child cgroups, then remove them (deepest first).
  for cg in "${cgroups[@]}"; do
    echo $$ > "$(dirname "$cg")/cgroup.procs" 2>/dev/null
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  snapshot > "$work/after"
  # Processes that were there before and still are must be in the same cgroups.
  moved=$(join <(cut -d' ' -f1,2- "$work/before") <(cut -d' ' -f1,2- "$work/after") | awk '{ if ($2 != $3) print }')
  if [ -n "$moved" ]; then echo "FAIL: processes outside this test changed cgroup:"; echo "$moved"; failed=$((failed + 1)); fi
  rm -rf "$work"
  [ $((passed + failed)) -eq 0 ] || echo "$passed passed, $failed failed"
  # An EXIT trap's last status is not the script's: say it.
  [ "$failed" -eq 0 ] || exit 1
}
trap cleanup EXIT

check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then
    echo "ok: $what"; passed=$((passed + 1))
  else
    echo "FAIL: $what"; failed=$((failed + 1))
    if declare -F diagnose >/dev/null; then diagnose; fi
  fi
}
eventually() {  # eventually seconds command...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}

# --- The container's units directory, systemd-firstboot masked.
units="$work/units"
mkdir -p "$units"
ln -s /dev/null "$units/systemd-firstboot.service"

inside() { nsenter -t "$init" -a "$@"; }

boot_container() {
  local os=()
  [ "${writable_os:-}" = 1 ] && os=(--overlay=/usr::/usr --overlay=/etc::/etc --overlay=/var::/var)
  systemd-nspawn --quiet --directory=/ --volatile=yes "${os[@]}" --register=no --keep-unit --private-network \
    --machine="$name" --bind-ro="$swift_root" --bind-ro="$repo" --bind="$units:/etc/systemd/system" \
    --boot >"$work/console" 2>&1 &
  nspawn_pid=$!
  init=""
  eventually 30 bash -c "pgrep -P $nspawn_pid >/dev/null" || { echo "container did not start"; cat "$work/console"; exit 1; }
  init=$(pgrep -P "$nspawn_pid" | head -1)
  eventually 60 inside systemctl is-system-running --wait >/dev/null 2>&1 || true

}
