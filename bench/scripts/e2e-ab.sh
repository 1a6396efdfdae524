#!/bin/bash
# A/B of the order-saga load driver between checkouts (issue 14): runs each tree in turn, N rounds, and
# prints orders/s, the driver's CPU per order, and the broker's and Redis's CPU over the whole run
# divided by the orders (warm-up and checker included). Redis must be a private one (RPORT) so
# its INFO cpu is the run's alone. Usage: bench/scripts/e2e-ab.sh rabbitmq|kafka ROUNDS TREE...
# env: ORDERS (3000), WARM (3000), RPORT (7013), NODEBIN (Node 24 from scripts/node/install 24).
t=$1; n=$2; shift 2
export PATH=${NODEBIN:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/node/24/bin}:$PATH
BEAM=$(pgrep -f beam.smp | head -1); KPID=$(pgrep -f kafka.Kafka | head -1)
pcpu(){ [ -n "$1" ] && awk '{print $14+$15}' /proc/$1/stat || echo 0; }
rcpu(){ redis-cli -p ${RPORT:-7013} info cpu | awk -F: '/used_cpu_(user|sys):/{s+=$2} END{printf "%d", s*1e6}'; }
for i in $(seq 1 $n); do for tree in "$@"; do
  cd $tree/examples
  if [ $t = kafka ]; then B=$KPID; else B=$BEAM; fi
  b0=$(pcpu $B); r0=$(rcpu)
  out=$(REDIS_URL=redis://127.0.0.1:${RPORT:-7013} node --import tsx order-saga/src/bin/load.ts --transport $t --orders ${ORDERS:-3000} --concurrency 256 --warmup ${WARM:-3000} --partitions 8 --consumers 1 --json 2>/dev/null | tr -d '\n ')
  b1=$(pcpu $B); r1=$(rcpu)
  tot=$(( ${ORDERS:-3000} + ${WARM:-3000} ))
  echo "$(basename $tree) $t ops=$(echo "$out" | grep -oE '"ordersPerS":[0-9]+' | cut -d: -f2) drv=$(echo "$out" | grep -oE '"cpuUsPerOrder":[0-9]+' | cut -d: -f2) broker=$(( (b1-b0)*10000 / tot )) redis=$(( (r1-r0) / tot )) $(echo "$out" | grep -oE '"consistent":[a-z]+') load=$(cut -d' ' -f1 /proc/loadavg) $(date +%H:%M:%S)"
done; done
