#!/usr/bin/env bash
# Spawn, list, stop and collect the logs of Herd workers on many hosts over ssh.
#
# usage: herd-workers.sh spawn  -f HOSTS -l tcp://LEARNER:PORT [-n PER_HOST] [-e ENVS]
#                               [-b REMOTE_HERD] [-k LEARNER_PUB -s WORKER_KEY]
#        herd-workers.sh status -f HOSTS
#        herd-workers.sh stop   -f HOSTS
#        herd-workers.sh logs   -f HOSTS [-o LOCAL_DIR]
#
# HOSTS is a file with one [user@]host per line ('#' starts a comment). Each worker
# runs detached on its host (nohup), writes its log and pid file under
# ~/.herd-workers/ there, and is stopped with SIGTERM (it says goodbye), then SIGKILL
# after 10 s. `logs` copies every host's logs into LOCAL_DIR/HOST/. The herd binary
# must be installed on the hosts (-b, default: herd on their PATH), built for their
# CPUs: one built on a newer CPU exits at once and its log says which features the
# host lacks (`HERD_PORTABLE=1 make build` runs on any x86-64). With CURVE, -k is
# the learner's public key file and -s the worker's secret key file, both already on
# the hosts at those paths. HERD_SSH overrides the ssh command (tests use it).
set -euo pipefail

PROG=$(basename "$0")
usage() {
  sed -n '4,8p' "$0" | sed "s/^# //; s/herd-workers.sh/$PROG/" >&2
  exit 2
}
die() { echo "$PROG: $*" >&2; exit 1; }

[[ $# -ge 1 ]] || usage
COMMAND=$1
shift
case $COMMAND in
  spawn | status | stop | logs) ;;
  -h | --help | help) usage ;;
  *) echo "$PROG: unknown command '$COMMAND' (spawn, status, stop or logs)" >&2; usage ;;
esac

HOSTS_FILE=""
LEARNER=""
PER_HOST=1
ENVS=""
REMOTE_HERD=herd
LEARNER_PUB=""
WORKER_KEY=""
OUT_DIR=herd-worker-logs
while getopts ":f:l:n:e:b:k:s:o:h" opt; do
  case $opt in
    f) HOSTS_FILE=$OPTARG ;;
    l) LEARNER=$OPTARG ;;
    n) PER_HOST=$OPTARG ;;
    e) ENVS=$OPTARG ;;
    b) REMOTE_HERD=$OPTARG ;;
    k) LEARNER_PUB=$OPTARG ;;
    s) WORKER_KEY=$OPTARG ;;
    o) OUT_DIR=$OPTARG ;;
    h) usage ;;
    :) die "option -$OPTARG needs a value" ;;
    *) die "unknown option -$OPTARG (try -h)" ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || die "unexpected argument '$1'"

[[ -n $HOSTS_FILE ]] || die "-f HOSTS is required (a file with one host per line)"
[[ -r $HOSTS_FILE ]] || die "cannot read the hosts file '$HOSTS_FILE'"
mapfile -t HOSTS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HOSTS_FILE" | grep -v '^$' || true)
[[ ${#HOSTS[@]} -gt 0 ]] || die "'$HOSTS_FILE' lists no hosts"

if [[ $COMMAND == spawn ]]; then
  [[ $LEARNER =~ ^tcp://[^:/]+:[0-9]+$ ]] || die "-l must be the learner's tcp://HOST:PORT, got '$LEARNER'"
  [[ $PER_HOST =~ ^[1-9][0-9]*$ ]] || die "-n must be a positive whole number, got '$PER_HOST'"
  [[ -z $ENVS || $ENVS =~ ^[1-9][0-9]*$ ]] || die "-e must be a positive whole number, got '$ENVS'"
  [[ -z $LEARNER_PUB && -z $WORKER_KEY || -n $LEARNER_PUB && -n $WORKER_KEY ]] ||
    die "-k (learner public key) and -s (worker secret key) go together"
fi

read -r -a SSH <<<"${HERD_SSH:-ssh -o BatchMode=yes -o ConnectTimeout=10}"
# shellcheck disable=SC2016  # $HOME is the remote host's, expanded there
REMOTE_DIR='$HOME/.herd-workers'

# Runs a shell script on HOST; the script arrives on stdin, so nothing in it is
# re-parsed by the local shell.
on_host() {  # HOST SCRIPT
  "${SSH[@]}" "$1" bash -s <<<"$2"
}

# A file-name-safe label for a host ("user@10.0.0.5" -> "user_10.0.0.5").
label() { printf '%s' "${1//[^A-Za-z0-9._-]/_}"; }

spawn() {
  local host=$1 index=$2 i args script
  for ((i = 1; i <= PER_HOST; i++)); do
    args=(worker --learner "$LEARNER" --seed "$((index * 1000 + i))")
    [[ -n $ENVS ]] && args+=(--envs "$ENVS")
    [[ -n $LEARNER_PUB ]] && args+=(--learner-public-key "$LEARNER_PUB" --curve-secret-key "$WORKER_KEY")
    local name
    name="$(label "$host")-$i"
    script="set -eu
dir=$REMOTE_DIR
mkdir -p \"\$dir\"
if [ -f \"\$dir/$name.pid\" ] && kill -0 \"\$(cat \"\$dir/$name.pid\")\" 2>/dev/null; then
  echo \"$host: worker $i already runs (pid \$(cat \"\$dir/$name.pid\"))\"; exit 0
fi
nohup $(printf '%q ' "$REMOTE_HERD" "${args[@]}") >\"\$dir/$name.log\" 2>&1 </dev/null &
echo \$! >\"\$dir/$name.pid\"
echo \"$host: worker $i started (pid \$!), log \$dir/$name.log\""
    on_host "$host" "$script"
  done
}

status() {
  local host=$1 name
  name=$(label "$host")
  on_host "$host" "dir=$REMOTE_DIR
found=0
for f in \"\$dir\"/$name-*.pid; do
  [ -e \"\$f\" ] || continue
  found=1
  w=\$(basename \"\$f\" .pid); pid=\$(cat \"\$f\")
  if kill -0 \"\$pid\" 2>/dev/null; then state=running; else state=stopped; fi
  last=\$(tail -n 1 \"\$dir/\$w.log\" 2>/dev/null || true)
  echo \"$host  \$w  pid \$pid  \$state  | \$last\"
done
[ \$found = 1 ] || echo \"$host  no workers\""
}

stop() {
  local host=$1 name
  name=$(label "$host")
  on_host "$host" "dir=$REMOTE_DIR
for f in \"\$dir\"/$name-*.pid; do
  [ -e \"\$f\" ] || continue
  pid=\$(cat \"\$f\")
  if kill -TERM \"\$pid\" 2>/dev/null; then
    for _ in \$(seq 50); do kill -0 \"\$pid\" 2>/dev/null || break; sleep 0.2; done
    if kill -0 \"\$pid\" 2>/dev/null; then kill -KILL \"\$pid\"; echo \"$host: pid \$pid killed after 10 s\"; else echo \"$host: pid \$pid stopped\"; fi
  fi
  rm -f \"\$f\"
done"
}

logs() {
  local host=$1 name dest
  name=$(label "$host")
  dest="$OUT_DIR/$(label "$host")"
  mkdir -p "$dest"
  # One tar stream per host: the logs keep their names.
  on_host "$host" "dir=$REMOTE_DIR; cd \"\$dir\" 2>/dev/null && ls $name-*.log >/dev/null 2>&1 && tar -cf - $name-*.log || true" |
    tar -xf - -C "$dest" 2>/dev/null || true
  echo "$host: $(find "$dest" -name '*.log' | wc -l) log(s) in $dest"
}

failed=0
for index in "${!HOSTS[@]}"; do
  host=${HOSTS[$index]}
  case $COMMAND in
    spawn) spawn "$host" "$((index + 1))" || { echo "$PROG: $host: spawn failed" >&2; failed=1; } ;;
    status) status "$host" || { echo "$PROG: $host: unreachable" >&2; failed=1; } ;;
    stop) stop "$host" || { echo "$PROG: $host: stop failed" >&2; failed=1; } ;;
    logs) logs "$host" || { echo "$PROG: $host: could not fetch logs" >&2; failed=1; } ;;
  esac
done
exit "$failed"
