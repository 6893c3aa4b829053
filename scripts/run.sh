#!/usr/bin/env bash
# `make run`: the Worker on workerd (`wrangler dev`, 127.0.0.1:8787) with the simulated AI API on,
# then 200 short documents through POST /v1/batch with the CLI's --worker mode (live progress,
# summary), then a 2,000-request batch stored on the Worker (POST /v1/batches: Durable Objects
# and Queues) on the simulator, followed to its end with the CLI, then it keeps serving (the
# demo page at /, the batch API, the simulator) until Ctrl-C, and stops wrangler cleanly.
# Stored batches persist in wrangler's local state folder (worker/.wrangler/state): a make run
# stopped mid-batch finds the batch still running next time and follows it to the end before
# submitting anything new. The token is EDGEBATCH_TOKEN when set, else one kept in that folder.
# With ANTHROPIC_API_KEY set, the batch goes to the real Anthropic API instead (the key reaches
# wrangler through a private env file, never the command line).
#   scripts/run.sh [--once]    --once: stop after the batch instead of serving on
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'run: %s\n' "$*"; }

once=false
for arg in "$@"; do
  case $arg in
    --once) once=true ;;
    *) die "unknown argument '$arg' (usage: scripts/run.sh [--once])" ;;
  esac
done

host=127.0.0.1
port=8787
origin="http://$host:$port"
sample=worker/sample/documents.jsonl
out_dir=$root/test-artifacts/run
results=$out_dir/results.jsonl
wrangler_log=$out_dir/wrangler.log
state_dir=$root/worker/.wrangler/state
token_file=$state_dir/edgebatch-dev-token
batch_requests=2000

# Build what is missing (make run has already done both; this is for a direct call).
if [ ! -f pkg/edgebatch_bg.wasm ] || [ ! -f sim/pkg/edgebatch_sim_bg.wasm ] || [ ! -x worker/node_modules/.bin/wrangler ]; then
  scripts/setup.sh
  [ -f pkg/edgebatch_bg.wasm ] && [ -f sim/pkg/edgebatch_sim_bg.wasm ] || PATH="$root/.tools/bin:$PATH" scripts/build.sh
fi
[ -f "$sample" ] || die "$sample is missing"

if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  die "something already listens on $host:$port; stop it first (an earlier make run?)"
fi

mkdir -p "$out_dir" "$state_dir"
rm -f "$results"
if [ -n "${EDGEBATCH_TOKEN:-}" ]; then
  token=$EDGEBATCH_TOKEN
elif [ -s "$token_file" ]; then
  token=$(<"$token_file")
else
  token="dev-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  (umask 077 && printf '%s\n' "$token" >"$token_file")
fi

wrangler_pid=
env_file=
stop() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$wrangler_pid" ] && kill -0 "$wrangler_pid" 2>/dev/null; then
    note "stopping wrangler (pid $wrangler_pid)"
    kill -INT "$wrangler_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$wrangler_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$wrangler_pid" 2>/dev/null; then
      kill -KILL "$wrangler_pid" 2>/dev/null || true
    fi
    wait "$wrangler_pid" 2>/dev/null || true
    # workerd, wrangler's child, lets go of the port a moment later.
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null || break
      sleep 0.1
    done
  fi
  [ -z "$env_file" ] || rm -f "$env_file"
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Secrets reach wrangler in a private env file (shown as "(hidden)" in its log, absent from ps).
env_file=$(mktemp "${TMPDIR:-/tmp}/edgebatch-env.XXXXXX")
chmod 600 "$env_file"
printf 'EDGEBATCH_TOKEN=%s\n' "$token" >"$env_file"
# Stored batches: the alarm looks every second; leases (30 s) and lost queue messages (10 s
# without a claim) come back soon after a restart, since the local queue forgets its backlog.
wrangler_args=(dev --ip "$host" --port "$port" --var EDGEBATCH_SIM:on --env-file "$env_file"
  --persist-to "$state_dir" --var EDGEBATCH_BATCH_ALARM_MS:1000 --var EDGEBATCH_BATCH_LEASE_MS:30000
  --var EDGEBATCH_BATCH_REDELIVER_MS:10000 --show-interactive-dev-session=false
  # The dev token's hour holds the demo's 2,200 items (the production default is 1,000).
  --var EDGEBATCH_ITEMS_PER_HOUR:100000 --var EDGEBATCH_SUBREQUESTS_PER_HOUR:1000000)
cli_args=(--worker "$origin" --max-retries 8)
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
  printf 'ANTHROPIC_API_KEY=%s\n' "$ANTHROPIC_API_KEY" >>"$env_file"
  cli_args+=(--timeout-ms 20000)
  target="the real Anthropic API (ANTHROPIC_API_KEY is set)"
else
  cli_args+=(--base-url "$origin/sim" --timeout-ms 3000)
  target="the simulator at $origin/sim (set ANTHROPIC_API_KEY to use the real API)"
fi


note "starting wrangler dev (workerd) on $origin; its log: ${wrangler_log#"$root"/}"
# The node process of wrangler itself (not an npx wrapper), so its PID is the one to stop.
(cd worker && WRANGLER_SEND_METRICS=false exec node_modules/.bin/wrangler "${wrangler_args[@]}") \
  >"$wrangler_log" 2>&1 </dev/null &
wrangler_pid=$!

healthy() {
  node -e '
    fetch(process.argv[1], { signal: AbortSignal.timeout(1000) })
      .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));' "$origin/healthz"
}
for i in $(seq 120); do
  healthy && break
  kill -0 "$wrangler_pid" 2>/dev/null || { tail -n 30 "$wrangler_log" >&2; die "wrangler dev exited"; }
  [ "$i" -lt 120 ] || { tail -n 30 "$wrangler_log" >&2; die "no answer from $origin/healthz after 60 s"; }
  sleep 0.5
done
note "the Worker answers on $origin/healthz (stored batches: ${state_dir#"$root"/})"

batches() {
  local status=0
  EDGEBATCH_WORKER=$origin EDGEBATCH_TOKEN=$token node scripts/run-batches.mjs "$@" || status=$?
  case $status in
    0) ;;
    1) note "a stored batch did not fully succeed (see above)" ;;
    130) exit 130 ;;
    *) die "scripts/run-batches.mjs failed (exit $status)" ;;
  esac
}
# Batches an earlier make run left running go first: nothing new until they have ended.
batches resume

note "sending $(grep -c . "$sample") documents to POST $origin/v1/batch -> $target"
status=0
EDGEBATCH_TOKEN=$token node cli/edgebatch.mjs run "$sample" -o "$results" "${cli_args[@]}" || status=$?
case $status in
  0) ;;
  1) note "some items failed (see ${results#"$root"/})" ;;
  130) exit 130 ;;
  *) die "the CLI failed (exit $status)" ;;
esac
note "results: ${results#"$root"/}"
if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  node -e '
    fetch(process.argv[1]).then((r) => r.json()).then((s) => {
      const statuses = Object.entries(s.byStatus ?? {}).map(([k, n]) => `${k}: ${n}`).join(", ");
      console.log(`run: since wrangler started, the simulator saw ${s.requests} requests (${statuses}), ${s.hangs} hangs, ` +
        `${s.disconnects} dropped connections, ${s.slowBodies} slow bodies, ${s.malformed} broken replies`);
    }, () => {});' "$origin/sim/stats"
fi

note "and now a batch that outlives one request: $batch_requests requests through POST /v1/batches"
batches new "$batch_requests"
$once && exit 0

cat <<EOF

The Worker keeps serving on $origin (Ctrl-C stops it).
  demo page: open $origin/ in a browser and press Run
  dev token: $token
  try:       curl -sN $origin/v1/batch -H 'authorization: Bearer $token' \\
               -d '{"provider":{"name":"anthropic","baseUrl":"$origin/sim"},"items":[{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}]}'
  or:        EDGEBATCH_TOKEN=$token node cli/edgebatch.mjs run $sample -o /tmp/out.jsonl --worker $origin --base-url $origin/sim
  batches:   EDGEBATCH_TOKEN=$token node cli/edgebatch.mjs list --worker $origin
  sim stats: curl -s $origin/sim/stats
EOF
wait "$wrangler_pid" || true
