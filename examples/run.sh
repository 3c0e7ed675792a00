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
# The embedded MQTT broker takes 1883 unless something (Debian's mosquitto
# service, say) listens there already: then the next free port.
mqtt_port=1883
while (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null; do
  mqtt_port=$((mqtt_port + 1))
done
sock="$state/edgefaasd.sock"
export EDGEFAAS_AGENT="unix://$(realpath "$state")/edgefaasd.sock"
# Anonymous MQTT on loopback only: a demo, not a gateway on a LAN.
bin/edgefaasd --state-dir "$state" --api-socket "$sock" --listen "$listen" \
  --mqtt-listen "127.0.0.1:$mqtt_port" --mqtt-anonymous &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent' INT TERM
for _ in $(seq 100); do
  [ -S "$sock" ] && bin/edgefaas status >/dev/null 2>&1 && break
  kill -0 $agent 2>/dev/null || { echo "edgefaasd did not start" >&2; exit 1; }
  sleep 0.1
done
bin/edgefaas deploy hello --image build/hello-http.tar --mqtt 'hello/+=hello/{1}/reply'
bin/edgefaas deploy hello-sh --image build/hello-sh.tar --mode exec
port=${listen##*:}
cat <<MSG

edgefaasd is running (state in $state). Try:

  curl -d 'edge' http://127.0.0.1:$port/function/hello
  curl -d 'edge' http://127.0.0.1:$port/function/hello-sh
  EDGEFAAS_AGENT=$EDGEFAAS_AGENT bin/edgefaas ls

  mosquitto_sub -p $mqtt_port -t 'hello/+/reply' -v &
  mosquitto_pub -p $mqtt_port -q 1 -t hello/kitchen -m 'edge'

Ctrl-C stops the agent.
MSG
wait $agent
