#!/usr/bin/env bash
# A learner and two workers on three "hosts": network namespaces joined by veth
# pairs and a bridge (inside the learner's namespace, so no traffic leaves them).
# CURVE on. Trains StatelessCartPole, takes one worker's link down for a while and
# brings it back, and checks that /stats shows both hosts and that the worker's
# fragments count again. Prints the figures (steps/s per host, drops during the cut,
# time to reconnect). Needs root, iproute2, unshare and python3; where one is
# missing it prints "SKIP: ..." and exits 77. Cleans up its namespaces on any exit.
#
# usage: scripts/multihost-test.sh HERD_BINARY [CUT_SECONDS]
set -euo pipefail

usage() { echo "usage: $0 HERD_BINARY [CUT_SECONDS]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
HERD=$1
CUT=${2:-12}
[[ -x $HERD ]] || { echo "error: $HERD is not an executable herd binary" >&2; exit 2; }
[[ $CUT =~ ^[0-9]+$ ]] || { echo "error: CUT_SECONDS must be a whole number, got $CUT" >&2; exit 2; }

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces)"
for tool in ip unshare python3; do
  command -v "$tool" >/dev/null || skip "needs $tool (apt-get install iproute2 util-linux python3)"
done

TAG="h$$"
NS_L="$TAG-learner"
NS_A="$TAG-a"
NS_B="$TAG-b"
WORK=$(mktemp -d /tmp/herd-multihost.XXXXXX)
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "$NS_A" "$NS_B" "$NS_L"; do ip netns del "$ns" 2>/dev/null || true; done
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then
    echo "--- learner log (last 30 lines)"; tail -n 30 "$WORK/learner.log" 2>/dev/null || true
    for h in a b; do echo "--- worker $h log"; tail -n 10 "$WORK/worker-$h.log" 2>/dev/null || true; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ip netns add "$NS_L" || skip "ip netns add is not permitted here"
ip netns add "$NS_A"
ip netns add "$NS_B"

# The learner's namespace holds the bridge 10.77.0.1/24; each worker namespace is
# joined to it by a veth pair and has its own address.
ip -n "$NS_L" link set lo up
ip -n "$NS_L" link add br0 type bridge
ip -n "$NS_L" addr add 10.77.0.1/24 dev br0
ip -n "$NS_L" link set br0 up
join() {  # NAMESPACE SUFFIX ADDRESS
  ip -n "$NS_L" link add "veth-$2" type veth peer name eth0 netns "$1"
  ip -n "$NS_L" link set "veth-$2" master br0 up
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$3/24" dev eth0
  ip -n "$1" link set eth0 up
}
join "$NS_A" a 10.77.0.11
join "$NS_B" b 10.77.0.12

# Keys: one pair for the learner, one per worker host.
"$HERD" keys generate --name learner --out "$WORK/keys" >/dev/null
"$HERD" keys generate --name host-a --out "$WORK/keys/workers" >/dev/null
"$HERD" keys generate --name host-b --out "$WORK/keys/workers" >/dev/null

# Each process in its namespace with its own host name (a UTS namespace).
on_host() {  # NAMESPACE HOSTNAME LOG ARGS...
  local ns=$1 name=$2 log=$3
  shift 3
  # shellcheck disable=SC2016  # $1 and $@ belong to the inner sh
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "$name" "$@" >"$log" 2>&1 &
  PIDS+=("$!")
}
on_host "$NS_L" learner-host "$WORK/learner.log" "$HERD" learner --env StatelessCartPole-v1 --host 10.77.0.1 \
  --port 5555 --stats-port 5558 --stall-seconds 120 --stop-seconds 300 --run-dir "$WORK/run" \
  --curve-secret-key "$WORK/keys/learner.key" --authorized-keys "$WORK/keys/workers"
for _ in $(seq 50); do grep -q "stats: dashboard" "$WORK/learner.log" && break; sleep 0.2; done
grep -q "stats: dashboard" "$WORK/learner.log" || fail "the learner did not start"
for h in a b; do
  ns=$NS_A; [[ $h == b ]] && ns=$NS_B
  on_host "$ns" "host-$h" "$WORK/worker-$h.log" "$HERD" worker --learner tcp://10.77.0.1:5555 --envs 16 \
    --learner-public-key "$WORK/keys/learner.pub" --curve-secret-key "$WORK/keys/workers/host-$h.key"
done

stats() { ip netns exec "$NS_L" "$HERD" stats http://10.77.0.1:5558 --json --once; }
# Prints what a python expression says of the /stats document `d` (w: rows by host).
query() {
  stats | python3 -c '
import json, sys
d = json.load(sys.stdin)
w = {r["host"]: r for r in d["workers"]}
print(eval(sys.argv[1]))' "$1"
}
wait_for() {  # SECONDS EXPRESSION
  local until=$((SECONDS + $1))
  while ((SECONDS < until)); do
    [[ $(query "$2" 2>/dev/null) == True ]] && return 0
    sleep 0.5
  done
  return 1
}

wait_for 40 'all(h in w and w[h]["state"] == "connected" and w[h]["env_steps"] > 0 for h in ("host-a", "host-b")) and d["learner/updates"] > 0' ||
  fail "both worker hosts should train within 40 s"
sleep 4
RATE_A=$(query 'round(w["host-a"]["steps_per_second"])')
RATE_B=$(query 'round(w["host-b"]["steps_per_second"])')
echo "env steps/s per host: host-a $RATE_A, host-b $RATE_B"

# Cut host a's link, then bring it back.
DROPS_BEFORE=$(query 'sum(d["dropped"].values())')
STALE_BEFORE=$(query 'd["dropped"]["stale_policy"]')
ip -n "$NS_A" link set eth0 down
echo "host-a link down for $CUT s"
sleep "$CUT"
STATE_DURING=$(query 'w["host-a"]["state"]')
STEPS_CUT=$(query 'w["host-a"]["env_steps"]')
ip -n "$NS_A" link set eth0 up
UP_AT=$(date +%s.%N)
wait_for 60 "w[\"host-a\"][\"state\"] == \"connected\" and w[\"host-a\"][\"env_steps\"] > $STEPS_CUT and w[\"host-a\"][\"seconds_since_heartbeat\"] < 3" ||
  fail "host-a should be back within 60 s of its link coming up"
BACK_AT=$(date +%s.%N)
sleep 4  # let the fragments queued during the cut arrive and be judged
DROPS_AFTER=$(query 'sum(d["dropped"].values())')
STALE_AFTER=$(query 'd["dropped"]["stale_policy"]')
STEPS_A_AFTER=$(query 'w["host-a"]["env_steps"]')
RECONNECT=$(python3 -c "print(f'{$BACK_AT - $UP_AT:.1f}')")
echo "during the cut host-a was: $STATE_DURING"
echo "fragments dropped over the cut and recovery: $((DROPS_AFTER - DROPS_BEFORE)) (stale_policy $((STALE_AFTER - STALE_BEFORE)))"
echo "time from link up to host-a's fresh heartbeat with new env steps: $RECONNECT s"
((STEPS_A_AFTER > STEPS_CUT)) || fail "host-a's env steps should grow again after the cut"
[[ $(query 'sorted(w) == ["host-a", "host-b"] and all(r["state"] == "connected" for r in w.values())') == True ]] ||
  fail "/stats should show both hosts connected"
[[ $(query 'd["dropped"]["unauthorized"]') == 0 ]] || fail "no authorised worker should have been refused"
query '"\n".join("  %s: %d env steps, %d episodes, mean return %s, policy %d" % (h, r["env_steps"], r["episodes"], r["mean_return"], r["policy_version"]) for h, r in sorted(w.items()))'

kill -TERM "${PIDS[0]}"
for _ in $(seq 100); do kill -0 "${PIDS[0]}" 2>/dev/null || break; sleep 0.2; done
[[ -s $WORK/run/summary.json ]] || fail "the learner should write summary.json when stopped"
echo "PASS: learner and 2 worker hosts over network namespaces with CURVE; link cut survived"
