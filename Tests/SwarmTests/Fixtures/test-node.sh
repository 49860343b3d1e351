#!/bin/bash
# A tiny node for the supervision tests, speaking swarmd's node protocol:
# a report on fd 3 every 0.2 s, commands (drain, pause, resume) on fd 4,
# EOF on fd 4 = the supervisor is gone.
# TEST_NODE_MODE:
#   exit       exits at once with status 3 (a crash loop)
#   garbage    writes malformed reports between good ones
#   stubborn   ignores TERM (only KILL or QUIT end it)
#   slowstart  waits 1.5 s before its first report
case "$TEST_NODE_MODE" in
  exit) exit 3 ;;
  slowstart) sleep 1.5 ;;
esac
n=0
state=running
if [ "$TEST_NODE_MODE" = stubborn ]; then
  trap '' TERM
else
  trap 'echo "v=1 health=ok state=stopping handled=$n" >&3; exit 0' TERM
fi
while :; do
  n=$((n + 1))
  echo "v=1 health=ok state=$state handled=$n slot=$SWARM_SLOT" >&3
  [ "$TEST_NODE_MODE" = garbage ] && echo "this is not a report" >&3
  if read -r -t 0.2 command <&4; then
    case "$command" in
      drain|pause) state=drained ;;
      resume) state=running ;;
    esac
  elif [ $? -le 128 ]; then
    exit 0  # EOF on fd 4: swarmd is gone
  fi
done
