#!/bin/bash
# An exec handler for swarm in bash: see swarm-handler(7). For text
# messages only (bash cannot hold NUL bytes); prints each key and value to
# stderr, which swarmd logs with the node's slot, and acknowledges each batch.
export LC_ALL=C   # read -N counts bytes, not characters
while read -r kind count; do
  [ "$kind" = batch ] || { echo "unexpected line: $kind" >&2; exit 1; }
  for ((i = 0; i < count; i++)); do
    read -r _ topic partition offset timestamp key_len value_len header_count
    for ((h = 0; h < header_count; h++)); do
      read -r _ name_len hv_len
      read -r -N $((name_len + hv_len + 1)) _
    done
    key=""; value=""
    [ "$key_len" -gt 0 ] && read -r -N "$key_len" key
    [ "$value_len" -gt 0 ] && read -r -N "$value_len" value
    read -r -N 1 _
    if [ "$value_len" -lt 0 ]; then
      echo "$topic/$partition@$offset key=$key deleted (tombstone)" >&2
    else
      echo "$topic/$partition@$offset key=$key value=$value" >&2
    fi
  done
  echo "ok $count"
done
