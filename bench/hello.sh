#!/usr/bin/env bash
# What the router adds over bare node:http: a hello-world route on each (bench/hello.ts), loaded
# in turn with `npx autocannon -c 50 -d 10` after 3 s of warm-up, ROUNDS times (default 5),
# alternating so that a change in the machine's load hits both. Prints each run and the medians.
#   cd bench && npm install && npm run bench:hello
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS="${ROUNDS:-5}"
PORT="${PORT:-3000}"
URL="http://127.0.0.1:$PORT/hello"
if curl -s -o /dev/null "$URL"; then
  echo "something already listens on port $PORT; set PORT to a free one" >&2
  exit 1
fi
pid=""
trap '[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' EXIT
declare -A RPS
for round in $(seq "$ROUNDS"); do
  for mode in bare router; do
    PORT="$PORT" node --import tsx hello.ts "$mode" >/dev/null &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "$URL" && break; sleep 0.1; done
    npx autocannon -c 50 -d 3 "$URL" >/dev/null 2>&1
    line=$(npx autocannon -c 50 -d 10 --json "$URL" 2>/dev/null | node -e '
      let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
        const j = JSON.parse(s);
        if (j.non2xx || j.errors) throw new Error(`non-2xx ${j.non2xx}, errors ${j.errors}`);
        console.log(`${Math.round(j.requests.average)} ${j.latency.p99}`);
      });')
    kill -TERM "$pid"; wait "$pid" || true
    pid=""
    RPS[$mode]="${RPS[$mode]:-} ${line%% *}"
    echo "round $round  $mode  ${line%% *} req/s  p99 ${line##* } ms"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
bare=$(echo "${RPS[bare]}" | median)
router=$(echo "${RPS[router]}" | median)
echo "median of $ROUNDS: bare node:http $bare req/s, router $router req/s ($(node -p "($router / $bare).toFixed(2)")x)"
