#!/usr/bin/env bash
# The CPU one load-driver run costs per order in each process it uses on this machine: the
# driver itself (its own --json report) and the services next to it, read from /proc before and
# after: the Kafka broker's JVM, RabbitMQ's beam.smp and the Redis server on 6379.
# Usage: bench/scripts/server-cpu.sh kafka|rabbitmq|memory [orders] [concurrency]
# DIR=/path/to/another/worktree runs that worktree's driver (A/B pairs).
# WARMUP=N places N orders first, unmeasured (warm JITs); the servers' CPU then spans them too,
# so it is divided by orders + N.
# DRIVER=handwritten runs the hand-written order saga (bench/src/handwritten, raw clients) instead.
set -euo pipefail
transport=${1:?kafka, rabbitmq or memory}
orders=${2:-2000}
concurrency=${3:-256}
warmup=${WARMUP:-0}
dir=${DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
declare -A pid=(
  [kafka]=$(pgrep -f 'kafka\.Kafka' | head -1 || true)
  [rabbitmq]=$(pgrep -x beam.smp | head -1 || true)
  [redis]=$(pgrep -f 'redis-server 127.0.0.1:6379' | head -1 || true)
)
tick=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
declare -A before
for name in "${!pid[@]}"; do before[$name]=$(cpu "${pid[$name]}"); done
if [ "${DRIVER:-backtrack}" = handwritten ]; then
  report=$(cd "$dir" && npx tsx bench/src/handwritten/main.ts --transport "$transport" ${HANDWRITTEN_ARGS:-} \
    --orders "$orders" --warmup "$warmup" --concurrency "$concurrency" --json 2>/dev/null | tail -1)
else
  report=$(cd "$dir/examples" && npx tsx order-saga/src/bin/load.ts --transport "$transport" \
    --orders "$orders" --warmup "$warmup" --concurrency "$concurrency" --json 2>/dev/null | tail -1)
fi
echo "$report" | node -e 'const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(`${d.transport}: ${d.ordersPerS} orders/s, consistent ${d.consistent}, load ${d.loadAverage}`);
  console.log(`  driver: ${d.cpuUsPerOrder} µs CPU per order`);'
for name in kafka rabbitmq redis; do
  used=$(( $(cpu "${pid[$name]}") - ${before[$name]} ))
  [ -n "${pid[$name]}" ] && echo "  $name: $(( used * 1000000 / tick / (orders + warmup) )) µs CPU per order"
done
