#!/usr/bin/env bash
# `make run`: starts edgefaasd with its embedded defaults in a local state
# directory, deploys the two example functions and prints how to call them.
# The agent stays in the foreground; Ctrl-C stops it (and its sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
state=${1:-.state}
listen=${2:-:8080}
if [ "$(id -u)" != 0 ]; then
  echo "edgefaasd creates namespaces and cgroups: run it as root (sudo make run)" >&2
  exit 1
fi
mkdir -p "$state"
sock="$state/edgefaasd.sock"
export EDGEFAAS_AGENT="unix://$(realpath "$state")/edgefaasd.sock"
bin/edgefaasd --state-dir "$state" --api-socket "$sock" --listen "$listen" &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent' INT TERM
for _ in $(seq 100); do
  [ -S "$sock" ] && bin/edgefaas status >/dev/null 2>&1 && break
  kill -0 $agent 2>/dev/null || { echo "edgefaasd did not start" >&2; exit 1; }
  sleep 0.1
done
bin/edgefaas deploy hello --image build/hello-http.tar
bin/edgefaas deploy hello-sh --image build/hello-sh.tar --mode exec
port=${listen##*:}
cat <<MSG

edgefaasd is running (state in $state). Try:

  curl -d 'edge' http://127.0.0.1:$port/function/hello
  curl -d 'edge' http://127.0.0.1:$port/function/hello-sh
  EDGEFAAS_AGENT=$EDGEFAAS_AGENT bin/edgefaas ls

Ctrl-C stops the agent.
MSG
wait $agent
