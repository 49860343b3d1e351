#!/bin/sh
# A tiny node for the supervision tests: reports on fd 3 every 0.2 s.
# TEST_NODE_MODE=exit   exits at once with status 3 (a crash loop)
# TEST_NODE_MODE=silent never reports (a hung node)
# TEST_NODE_MODE=garbage writes malformed reports between good ones
# TEST_NODE_MODE=unhealthy reports health=unhealthy reason=2 after the first report
# TEST_NODE_MODE=leak   reports, and grows its memory past the limit (see test)
case "$TEST_NODE_MODE" in
  exit) exit 3 ;;
  silent) while :; do sleep 1; done ;;
esac
n=0
trap 'echo "v=1 health=ok state=stopping handled=$n" >&3; exit 0' TERM
while :; do
  n=$((n + 1))
  if [ "$TEST_NODE_MODE" = unhealthy ] && [ $n -gt 1 ]; then
    echo "v=1 health=unhealthy reason=2 handled=$n" >&3
  else
    echo "v=1 health=ok state=running handled=$n slot=$SWARM_SLOT" >&3
  fi
  [ "$TEST_NODE_MODE" = garbage ] && echo "this is not a report" >&3
  sleep 0.2 &
  wait $!
done
