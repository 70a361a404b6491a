#!/usr/bin/env bash
# District-scale benchmark of sds-sync against PostgreSQL (issues 9 and 17), natively or through
# ODBC (--odbc, issue 18), side by side with the floor and a Python peer. See BENCHMARKS.md.
#
#   scripts/bench.sh [--scale F] [--odbc] [--repeat N] [--no-peer] [--regenerate] [--keep]
#                    [--no-build | --bin PATH]
#   scripts/bench.sh [--scale F] --drop
#
#   --scale F      size of the synthetic district; 1.0 = 1,800 schools, 1,000,000 students,
#                  7,500,000 enrollments (default 1.0; 0.001 runs in seconds)
#   --odbc         read the database through ODBC (driver "PostgreSQL Unicode", Debian
#                  odbc-postgresql, with UseDeclareFetch=1) instead of postgres://; the build
#                  enables the `odbc` feature, and a --bin must have it (the peer and the floor
#                  read natively either way)
#   --repeat N     run every measured command N times and report the lowest wall time of each
#                  (default 1; on a shared machine 2 or 3 filters out a busy moment)
#   --no-peer      leave out the Python peer (no virtual environment, no psycopg)
#   --sorted-floor accepted for old command lines: the sorted floor is always measured now
#   --regenerate   drop and rebuild the benchmark database of that scale first
#   --keep         keep the temporary folder (state dir, outputs, logs) and print its path
#   --no-build     use the release binary already built (target/release/sds-sync) as it is
#   --bin PATH     benchmark this sds-sync binary instead (no build; to compare a change)
#   --drop         drop the benchmark database of that scale and exit
#
# What it does, in one run on one database:
#   1. cargo build --release --bin sds-sync
#   2. creates database sds_bench_<scale> (reference schema, deploy/sis/schema-postgres.sql,
#      filled by scripts/bench/generate.sql) unless it already exists for this scale and
#      generator; it is left in place for the next run (drop it with --drop)
#   3. warms the page cache, then measures wall time, peak RSS, client CPU (user + sys) and
#      bytes written (/usr/bin/time -v) of
#      (d)  the floor: the six queries sds-sync runs, exported by
#           `psql -c "\copy (...) TO ... CSV HEADER"`
#      (d') the sorted floor: the same with ORDER BY the key of their file
#      (p)  the Python peer: scripts/bench/peer.py, the v1 export a district admin would write
#           with psycopg 3 (installed into a virtual environment, see SDS_BENCH_VENV below)
#      (a)  the first full v1 export: `sds-sync once`, fresh state dir, one local destination
#      (b)  an unchanged run
#      (c)  a run after one student's first name changed (UPDATE of one row, undone afterwards)
#      and the phases of (a), (b), (c) from their JSON logs (scripts/bench/phases.jq)
#   4. checks the functional results: row counts of every file against an independent SQL
#      count, the peer's files byte for byte equal to sds-sync's, (b) published nothing,
#      enqueued nothing and created no staging folder, (c) reports exactly one changed row in
#      Student.csv and nothing else; prints the figures as markdown tables (BENCHMARKS.md), the
#      ratios to the floor and issue 17's targets (informational: met or missed).
#
# Exit status: 0 when every functional check passed (missed performance targets never fail the
# script), 1 on a functional failure, 2 on bad usage or a missing tool. PostgreSQL:
# PGHOST/PGPORT/PGUSER/PGPASSWORD (default postgres@127.0.0.1:5432). The peer's virtual
# environment: SDS_BENCH_VENV (default ~/.cache/sds-sync/bench-venv), created once.
set -euo pipefail
CALLER_PWD=$(pwd)
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCALE=1.0
REGENERATE=0
KEEP=0
DROP=0
BUILD=1
BIN=""
ODBC=0
REPEAT=1
PEER=1
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="${2:?--scale needs a number}"; shift 2 ;;
    --scale=*) SCALE="${1#--scale=}"; shift ;;
    --regenerate) REGENERATE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --drop) DROP=1; shift ;;
    --sorted-floor) shift ;;
    --odbc) ODBC=1; shift ;;
    --repeat) REPEAT="${2:?--repeat needs a count}"; shift 2 ;;
    --repeat=*) REPEAT="${1#--repeat=}"; shift ;;
    --no-peer) PEER=0; shift ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN="${2:?--bin needs a path}"; BUILD=0; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$SCALE" =~ ^[0-9]*\.?[0-9]+$ ]] || awk -v s="$SCALE" 'BEGIN { exit !(s <= 0 || s > 19) }'; then
  echo "bench: --scale must be a number in (0, 19], got $SCALE" >&2
  exit 2
fi
if ! [[ "$REPEAT" =~ ^[1-9][0-9]?$ ]]; then
  echo "bench: --repeat must be a count from 1 to 99, got $REPEAT" >&2
  exit 2
fi

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
export PGCLIENTENCODING=UTF8
SCALE_NORM=$(awk -v s="$SCALE" 'BEGIN { printf "%g", s }')
DB="sds_bench_$(echo "$SCALE_NORM" | tr '.' '_')"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }
FAILURES=()
fail() { printf 'FUNCTIONAL FAILURE: %s\n' "$*"; FAILURES+=("$*"); }
TC=1  # every run exited 0 with the expected row counts
T3A=1 # unchanged run published/enqueued/touched nothing
T3B=1 # unchanged run created no staging folder (a target: reported, never a failure)
T4=1  # one-name change reported as exactly one changed Student.csv row
TP=1  # the peer wrote sds-sync's files byte for byte
fail_b() { T3A=0; fail "$@"; }
fail_c() { T4=0; fail "$@"; }

db_exists() {
  [ "$("${PSQL[@]}" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" = 1 ]
}
drop_db() {
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Tools
command -v psql >/dev/null || die "psql is missing (apt-get install postgresql-client)"
pg_isready -q 2>/dev/null || "${PSQL[@]}" -d postgres -Atc 'SELECT 1' >/dev/null \
  || die "PostgreSQL is not reachable at $PGUSER@$PGHOST:$PGPORT"

if [ "$DROP" = 1 ]; then
  drop_db
  say "dropped database $DB (if it existed)"
  exit 0
fi

apt_install() { # package...
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  say "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}
install_pkg() { # command package
  command -v "$1" >/dev/null && return 0
  apt_install "$2" || true
  command -v "$1" >/dev/null || die "$1 is missing: install the $2 package"
}
[ -x /usr/bin/time ] || { install_pkg time time; }
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is missing: apt-get install time"
install_pkg jq jq
install_pkg sqlite3 sqlite3 # the outbox check reads the state DB
# b3sum (BLAKE3, the hash sds-sync writes into its manifests) for the hash floor of (f); without
# it that one floor shows "-".
command -v b3sum >/dev/null || apt_install b3sum || true
ODBC_DRIVER="PostgreSQL Unicode"
if [ "$ODBC" = 1 ]; then
  odbcinst -q -d -n "$ODBC_DRIVER" >/dev/null 2>&1 \
    || die "the ODBC driver \"$ODBC_DRIVER\" is not installed (scripts/ci-services installs unixODBC and it)"
fi
FEATURES=()
[ "$ODBC" = 1 ] && FEATURES=(--features sds-daemon/odbc)

# The peer's Python: a virtual environment of its own with psycopg 3 (the binary wheel, which
# bundles libpq), created once and reused; the system's Python is left alone.
PEER_VENV="${SDS_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sds-sync/bench-venv}"
PEER_PY="$PEER_VENV/bin/python"
if [ "$PEER" = 1 ] && ! { [ -x "$PEER_PY" ] && "$PEER_PY" -c 'import psycopg' 2>/dev/null; }; then
  step "Python peer: creating $PEER_VENV with psycopg[binary] (once)"
  install_pkg python3 python3
  rm -rf "$PEER_VENV"
  mkdir -p "$(dirname "$PEER_VENV")"
  python3 -m venv "$PEER_VENV" 2>/dev/null \
    || { rm -rf "$PEER_VENV"; apt_install python3-venv && python3 -m venv "$PEER_VENV"; } \
    || die "python3 -m venv failed (Debian: apt-get install python3-venv); --no-peer leaves the peer out"
  "$PEER_VENV/bin/pip" install -q --disable-pip-version-check 'psycopg[binary]>=3.2,<4' \
    || die "cannot install psycopg[binary] into $PEER_VENV; --no-peer leaves the peer out"
  "$PEER_PY" -c 'import psycopg' || die "psycopg does not import in $PEER_VENV"
fi

# ---------------------------------------------------------------------------------------------
t0=$(date +%s.%N)
if [ -n "$BIN" ]; then
  step "build skipped (--bin): benchmarking $BIN"
elif [ "$BUILD" = 1 ]; then
  step "build (cargo build --release --bin sds-sync ${FEATURES[*]})"
  cargo build --release --bin sds-sync "${FEATURES[@]}"
else
  step "build skipped (--no-build): using the existing release binary"
fi
case "$BIN" in
  "") ;;
  /*) ;;
  *) BIN="$CALLER_PWD/$BIN" ;;
esac
if [ -z "$BIN" ]; then
  BIN="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/sds-sync"
fi
[ -x "$BIN" ] || die "no sds-sync binary at $BIN"
say "$("$BIN" --version) ($BIN), build step $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

# ---------------------------------------------------------------------------------------------
# The benchmark database. Its comment records the scale, a hash of the generator and schema,
# and the row counts each file must have (computed by SQL, independently of sds-sync).
GEN="$ROOT/scripts/bench/generate.sql"
SCHEMA="$ROOT/deploy/sis/schema-postgres.sql"
GEN_HASH=$(cat "$SCHEMA" "$GEN" "$ROOT/scripts/bench/expected.sql" | md5sum | cut -c1-12)
MARK="sds-sync bench scale=$SCALE_NORM generator=$GEN_HASH"
comment() {
  "${PSQL[@]}" -d postgres -Atc "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$DB'"
}

step "database $DB"
if [ "$REGENERATE" = 1 ] && db_exists; then
  say "dropping $DB (--regenerate)"
  drop_db
fi
if db_exists && [[ "$(comment)" == "$MARK expected="* ]]; then
  say "exists for scale $SCALE_NORM, generator $GEN_HASH: reused (scripts/bench.sh --scale $SCALE_NORM --drop removes it)"
else
  if db_exists; then
    say "exists but not for this scale/generator (or incomplete): regenerating"
    drop_db
  fi
  t0=$(date +%s.%N)
  createdb -E UTF8 -T template0 "$DB"
  "${PSQL[@]}" -d "$DB" -v scale="$SCALE_NORM" -f "$SCHEMA" -f "$GEN"
  expected=$("${PSQL[@]}" -d "$DB" -Atf "$ROOT/scripts/bench/expected.sql")
  # Only a complete database gets the mark; an interrupted one is rebuilt next time.
  "${PSQL[@]}" -d postgres -c "COMMENT ON DATABASE $DB IS '$MARK expected=$expected'"
  GEN_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  say "generated in $GEN_SECS s"
fi
EXPECTED=$(comment | sed 's/.* expected=//')
say "size: $("${PSQL[@]}" -d "$DB" -Atc "SELECT pg_size_pretty(pg_database_size('$DB'))")"

# ---------------------------------------------------------------------------------------------
# The six queries a v1 export without the full formats runs, read from the source
# (crates/source/src/queries.rs: `first_contract_query` where it has its own text, else
# `default_query`), so the floor always runs exactly what sds-sync runs. One line per query:
# "<entity><TAB><sql on one line>".
QUERIES=$(awk '
  /^#\[cfg\(test\)\]/ { exit }
  /^pub fn default_query/ { fn = "default" }
  /^pub fn first_contract_query/ { fn = "first" }
  match($0, /Entity::[A-Za-z]+ =>/) { name = substr($0, RSTART + 8, RLENGTH - 11) }
  /^ *"\\$/ { grab = 1; sql = ""; next }
  grab {
    line = $0
    if (line ~ /"$/) { sub(/"$/, "", line); grab = 0 }
    sql = sql " " line
    if (!grab) { gsub(/[ \t]+/, " ", sql); sub(/^ /, "", sql); q[fn, name] = sql }
  }
  END {
    n = split("Schools Students Teachers Sections StudentEnrollments TeacherRosters", six, " ")
    for (i = 1; i <= n; i++) {
      e = six[i]
      if ((("first", e) in q)) print e "\t" q["first", e]
      else if ((("default", e) in q)) print e "\t" q["default", e]
    }
  }' "$ROOT/crates/source/src/queries.rs")
[ "$(printf '%s\n' "$QUERIES" | wc -l)" = 6 ] || die "could not read the six default queries from crates/source/src/queries.rs"
printf '%s\n' "$QUERIES" | grep -q '\\' && die "unexpected escape in a default query"

# ---------------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sds-bench.XXXXXX")
TARGET_STUDENT=""
NAME_CHANGED=0
SUMMARY=0
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ ${#FAILURES[@]} -gt 0 ] && [ "$SUMMARY" = 0 ]; then
    printf '\nbench stopped early (status %s) after %s functional failure(s):\n' "$rc" "${#FAILURES[@]}"
    printf '  %s\n' "${FAILURES[@]}"
  fi
  if [ -n "$TARGET_STUDENT" ] && [ "$NAME_CHANGED" = 1 ]; then
    "${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = regexp_replace(first_name, '-Zoë\$', '') WHERE student_number = '$TARGET_STUDENT' AND first_name LIKE '%-Zoë'" >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
printf '%s\n' "$QUERIES" >"$TMP/queries.tsv"

# /usr/bin/time -v fields of a report file: wall seconds, max RSS kB, CPU seconds (user + sys),
# FS outputs (512-byte blocks)
wall_of() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$1"; }
rss_of() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
cpu_of() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }
out_of() { awk -F': ' '/File system outputs/ { print $2 }' "$1"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
blocks_mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b * 512 / 1048576 }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# The figures of each measurement, by row key (floor, sorted, peer, a, b, c): the repetition
# with the lowest wall time.
declare -A WALL RSS CPU OUT LOAD
keep_best() { # key wall rss_kb cpu_s out_blocks load -> 0 when this repetition is the best so far
  if [ -z "${WALL[$1]:-}" ] || lt "$2" "${WALL[$1]}"; then
    WALL[$1]=$2 RSS[$1]=$3 CPU[$1]=$4 OUT[$1]=$5 LOAD[$1]=$6
    return 0
  fi
  return 1
}
keep_time() { # key time-file load
  keep_best "$1" "$(wall_of "$2")" "$(rss_of "$2")" "$(cpu_of "$2")" "$(out_of "$2")" "$3"
}
figures() { # key
  printf 'wall %s s, peak RSS %s MB, client CPU %s s, written %s MB, load %s' "${WALL[$1]}" \
    "$(mb "${RSS[$1]}")" "${CPU[$1]}" "$(blocks_mb "${OUT[$1]}")" "${LOAD[$1]}"
}
of_time() { # time-file: the same line for one repetition
  printf 'wall %s s, peak RSS %s MB, client CPU %s s, written %s MB' "$(wall_of "$1")" \
    "$(mb "$(rss_of "$1")")" "$(cpu_of "$1")" "$(blocks_mb "$(out_of "$1")")"
}

if [ "$ODBC" = 1 ]; then
  # UseDeclareFetch=1: psqlodbc reads through a cursor, Fetch rows at a time, instead of holding
  # the whole result in memory (its default); docs/configuration.md says so for admins too.
  SOURCE_URL="odbc:Driver={$ODBC_DRIVER};Server=$PGHOST;Port=$PGPORT;Database=$DB;Uid=$PGUSER;UseDeclareFetch=1;Fetch=10000"
else
  SOURCE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
fi
CONFIG="$TMP/config.toml"
cat >"$CONFIG" <<TOML
# sds-sync benchmark config (written by scripts/bench.sh)
[source]
url = "$SOURCE_URL"

[export]
format = "v1"
# The synthetic district has 7.5 million enrollments, above Microsoft's 2,000,000 rows per file
# (the default limit, which fails the run): the benchmark measures a district of that size.
max_rows_per_file = 100000000

[state]
dir = "$TMP/state"

[log]
format = "json"
level = "info"

[[destination]]
name = "bench-local"
kind = "local"
path = "$TMP/outbox"
TOML
[ -n "${PGPASSWORD:-}" ] && export SDS_SYNC__SOURCE__PASSWORD="$PGPASSWORD"
export SDS_SYNC_CONFIG="$CONFIG"
unset RUST_LOG

step "source"
say "$SOURCE_URL"

step "machine"
say "nproc=$(nproc) mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
say "load average before: $(load)"
say "busiest processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{ printf "%s(%s%%) ", $2, $1 }')"
say "every measured command runs $REPEAT time(s); the lowest wall time of each is reported"

step "warm-up (SELECT count(*) of every table, so every measurement reads from the page cache)"
for table in schools students staff staff_schools courses sections section_enrollments; do
  printf '%s=%s ' "$table" "$("${PSQL[@]}" -d "$DB" -Atc "SELECT count(*) FROM $table")"
done
echo

# ---------------------------------------------------------------------------------------------
# The floors: the six queries through `psql \copy`, one after the other; a set's figures are
# the sum of the six wall times, CPU times and writes, and the largest RSS.
declare -A SORT_KEY=([Schools]="school_id" [Students]="student_id" [Teachers]="teacher_id, school_id"
  [Sections]="school_id, course_code, section_code"
  [StudentEnrollments]="school_id, course_code, section_code, student_id"
  [TeacherRosters]="school_id, course_code, section_code, teacher_id")
FLOOR_ROWS=0
FLOOR_BYTES=0
floor_set() { # key: floor | sorted
  local key=$1 name sql order="" w=0 r=0 c=0 o=0 rows=0 l
  l=$(load1)
  mkdir -p "$TMP/floor"
  printf '  %-22s %10s %9s %10s %8s\n' query rows wall_s rss_MB cpu_s
  while IFS=$'\t' read -r name sql; do
    [ "$key" = sorted ] && order=" ORDER BY ${SORT_KEY[$name]:?no sort key for $name}"
    /usr/bin/time -v -o "$TMP/time.$key.$name" \
      "${PSQL[@]}" -d "$DB" -c "\\copy ($sql$order) TO '$TMP/floor/$name.csv' CSV HEADER"
    local f="$TMP/time.$key.$name" n
    n=$(($(wc -l <"$TMP/floor/$name.csv") - 1))
    rows=$((rows + n))
    w=$(add "$w" "$(wall_of "$f")"); c=$(add "$c" "$(cpu_of "$f")"); o=$((o + $(out_of "$f")))
    [ "$(rss_of "$f")" -gt "$r" ] && r=$(rss_of "$f")
    printf '  %-22s %10s %9s %10s %8s\n' "$name" "$n" "$(wall_of "$f")" "$(mb "$(rss_of "$f")")" "$(cpu_of "$f")"
  done <<<"$QUERIES"
  FLOOR_ROWS=$rows
  FLOOR_BYTES=$(du -cb "$TMP"/floor/*.csv | tail -1 | cut -f1)
  # The unsorted files stay for the sort floor of the phase floors (f).
  if [ "$key" = floor ] && [ ! -d "$TMP/unsorted" ]; then
    mv "$TMP/floor" "$TMP/unsorted"
  else
    rm -rf "$TMP/floor"
  fi
  printf '  %-22s %10s %9s %10s %8s\n' total "$rows" "$w" "$(mb "$r")" "$c"
  keep_best "$key" "$w" "$r" "$c" "$o" "$l" || true
}

for i in $(seq "$REPEAT"); do
  step "(d) floor: psql \\copy of the six queries sds-sync runs, one after the other ($i/$REPEAT)"
  floor_set floor
done
for i in $(seq "$REPEAT"); do
  step "(d') sorted floor: the same with ORDER BY the key of their file (server-side sort) ($i/$REPEAT)"
  floor_set sorted
done

# ---------------------------------------------------------------------------------------------
# (p) The Python peer writes the six files of the same export into $TMP/peer; after (a) they
# must equal sds-sync's byte for byte (same rows, same rules, same CSV), or the comparison
# would not be like for like.
PEER_PHASES=""
if [ "$PEER" = 1 ]; then
  PEER_DSN="host=$PGHOST port=$PGPORT user=$PGUSER dbname=$DB"
  for i in $(seq "$REPEAT"); do
    step "(p) Python peer: scripts/bench/peer.py, psycopg $("$PEER_PY" -c 'import psycopg; print(psycopg.__version__)') ($i/$REPEAT)"
    rm -rf "$TMP/peer"
    l=$(load1)
    rc=0
    /usr/bin/time -v -o "$TMP/time.peer.$i" "$PEER_PY" "$ROOT/scripts/bench/peer.py" \
      --dsn "$PEER_DSN" --queries "$TMP/queries.tsv" --out "$TMP/peer" 2>"$TMP/log.peer.$i" || rc=$?
    if [ "$rc" != 0 ]; then
      TP=0
      fail "the Python peer exited with $rc:"
      tail -5 "$TMP/log.peer.$i"
      continue
    fi
    say "  $(of_time "$TMP/time.peer.$i")"
    sed -n 's/^dropped: /  dropped: /p' "$TMP/log.peer.$i"
    if keep_time peer "$TMP/time.peer.$i" "$l"; then
      PEER_PHASES=$(grep '^{"phases"' "$TMP/log.peer.$i" | jq -c '.phases' || true)
    fi
  done
  [ -n "$PEER_PHASES" ] && say "  phases of the best run (s): $(jq -r 'to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$PEER_PHASES")"
fi

# ---------------------------------------------------------------------------------------------
# One sds-sync run under /usr/bin/time; its JSON log goes to $TMP/log.<tag>.
run_sds() { # tag
  local tag=$1 rc=0
  /usr/bin/time -v -o "$TMP/time.$tag" "$BIN" once >"$TMP/out.$tag" 2>"$TMP/log.$tag" || rc=$?
  if [ "$rc" != 0 ]; then
    TC=0
    fail "sds-sync once ($tag) exited with $rc; last log lines:"
    tail -5 "$TMP/log.$tag"
  fi
  "$BIN" status --json --runs 1 >"$TMP/status.$tag" 2>>"$TMP/log.status" \
    || fail "sds-sync status --json failed after ($tag)"
}
snapshot_dirs() { { find "$TMP/state/snapshots" -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true; } | wc -l; }
outbox_rows() { # jobs in the state DB's delivery outbox ("?" without the sqlite3 CLI)
  command -v sqlite3 >/dev/null && sqlite3 "file:$TMP/state/state.sqlite?mode=ro" 'SELECT count(*) FROM outbox' 2>/dev/null || echo "?"
}
outbox_stamp() { { find "$TMP/outbox" -type f -printf '%f %s %T@ %i\n' 2>/dev/null || true; } | sort; }
status_q() { jq -r "$2" "$TMP/status.$1"; }

# Phase timings of a run (scripts/bench/phases.jq), kept for the summary as $TMP/phases.<key>.
declare -A BEST_TAG
measure() { # key tag load: keeps the run's figures if it is the best of its key so far
  say "  $(of_time "$TMP/time.$2")"
  jq -rs --argjson wall "$(wall_of "$TMP/time.$2")" -f "$ROOT/scripts/bench/phases.jq" "$TMP/log.$2" \
    >"$TMP/phases.$2" 2>/dev/null || echo '{}' >"$TMP/phases.$2"
  jq -r 'to_entries[] | select(.value != null) | "    \(.key): \(.value) s"' "$TMP/phases.$2"
  if keep_time "$1" "$TMP/time.$2" "$3"; then
    BEST_TAG[$1]=$2
  fi
}

check_counts() { # tag
  local file want got
  for file in $(jq -r 'keys[]' <<<"$EXPECTED"); do
    want=$(jq -r --arg f "$file" '.[$f]' <<<"$EXPECTED")
    got=$(jq -r --arg f "$file" '.recent_runs[0].files[]? | select(.file == $f) | .rows' "$TMP/status.$1")
    [ "$got" = "$want" ] || { TC=0; fail "($1) $file has ${got:-no} rows, expected $want"; }
  done
  local n
  n=$(jq -r '.recent_runs[0].files | length' "$TMP/status.$1")
  [ "$n" = 6 ] || { TC=0; fail "($1) $n files reported, expected the 6 files of SDS v1"; }
}

# ---------------------------------------------------------------------------------------------
for i in $(seq "$REPEAT"); do
  step "(a) first full export: sds-sync once (fresh state, local destination) ($i/$REPEAT)"
  rm -rf "$TMP/state" "$TMP/outbox"
  l=$(load1)
  run_sds "a$i"
  measure a "a$i" "$l"
  [ "$(status_q "a$i" '.recent_runs[0].outcome')" = published ] || fail "(a$i) outcome is $(status_q "a$i" '.recent_runs[0].outcome'), expected published"
  check_counts "a$i"
  [ "$(status_q "a$i" '.pending_deliveries | length')" = 0 ] || fail "(a$i) a delivery is still pending"
  for f in School Section Student Teacher StudentEnrollment TeacherRoster; do
    [ -f "$TMP/outbox/$f.csv" ] || fail "(a$i) $f.csv was not delivered to the local destination"
  done
done
LAST_A="a$REPEAT"
SNAP_A=$(status_q "$LAST_A" '.current.id')
SDS_BYTES=$(status_q "$LAST_A" '[.current.files[].bytes] | add')
SDS_ROWS=$(status_q "$LAST_A" '.current.total_rows')
jq -r '.recent_runs[0].files[] | "  \(.file): \(.rows) rows, \(.bytes) bytes"' "$TMP/status.$LAST_A"
grep '"rows dropped"' "$TMP/log.$LAST_A" | jq -r '"  dropped: \(.file) \(.reason) \(.count)"' || true
PEER_COMPARED=0
if [ "$PEER" = 1 ] && [ "$TP" = 1 ] && [ -n "${WALL[peer]:-}" ] \
  && [ "$(status_q "$LAST_A" '.recent_runs[0].outcome')" = published ]; then
  PEER_COMPARED=1
  for f in School Section Student Teacher StudentEnrollment TeacherRoster; do
    cmp -s "$TMP/peer/$f.csv" "$TMP/outbox/$f.csv" \
      || { TP=0; fail "the Python peer's $f.csv differs from sds-sync's (diff $TMP/peer/$f.csv $TMP/outbox/$f.csv with --keep)"; }
  done
  [ "$TP" = 1 ] && say "  the Python peer wrote the same six files, byte for byte"
fi

# ---------------------------------------------------------------------------------------------
# (f) Phase floors: the work of each phase after extraction done by a standard tool on the same
# bytes (all from the page cache), so every phase of (a) and (b) has a measured floor next to it.
# Extraction's floor is (d). Measured once (the lowest of --repeat runs each), on copies: the
# destination folder stays as (a) left it for the checks of (b).
declare -A PF_WALL PF_CPU
pf_measure() { # key command...: the lowest wall time of $REPEAT runs
  local key=$1 i w
  shift
  for i in $(seq "$REPEAT"); do
    rm -rf "$TMP/pf.out" && mkdir -p "$TMP/pf.out"
    /usr/bin/time -v -o "$TMP/time.pf.$key" "$@" || { fail "phase floor $key: $* failed"; return 0; }
    w=$(wall_of "$TMP/time.pf.$key")
    if [ -z "${PF_WALL[$key]:-}" ] || lt "$w" "${PF_WALL[$key]}"; then
      PF_WALL[$key]=$w PF_CPU[$key]=$(cpu_of "$TMP/time.pf.$key")
    fi
  done
  printf '  %-7s wall %s s, CPU %s s\n' "$key" "${PF_WALL[$key]}" "${PF_CPU[$key]}"
}
V1_FILES="School Section Student Teacher StudentEnrollment TeacherRoster"
step "(f) phase floors: the same work done by standard tools on the same bytes"
# finish: sort each unsorted query result by the key of its file, in memory on both cores (GNU
# sort, C locale, comma-separated; a quoted comma in a field before a key column would shift
# that key, which changes the order but not the work).
cat >"$TMP/pf.sort.sh" <<'SH'
set -eu
dir=$1 out=$2
while IFS=$'\t' read -r name keys; do
  f="$dir/$name.csv"
  spec=$(head -1 "$f" | awk -F, -v keys="$keys" '
    BEGIN { n = split(keys, k, /, */) }
    { for (i = 1; i <= NF; i++) col[$i] = i }
    END { for (j = 1; j <= n; j++) { if (!(k[j] in col)) exit 1; printf "-k%d,%d ", col[k[j]], col[k[j]] } }')
  # shellcheck disable=SC2086
  tail -n +2 "$f" | LC_ALL=C sort -t, $spec -S 1G --parallel=2 -o "$out/$name.csv"
done
SH
for name in "${!SORT_KEY[@]}"; do printf '%s\t%s\n' "$name" "${SORT_KEY[$name]}"; done >"$TMP/pf.keys"
pf_measure sort bash -c 'bash "$1" "$2" "$3" <"$4"' _ "$TMP/pf.sort.sh" "$TMP/unsorted" "$TMP/pf.out" "$TMP/pf.keys"
rm -rf "$TMP/unsorted"
# render (a): write the bytes of (a)'s six files to new files (unsynced), and hash them once
# (BLAKE3, one thread, as each file is hashed by the thread that renders it).
pf_measure write bash -c 'for f in $2; do cat "$1/$f.csv" >"$3/$f.csv"; done' _ "$TMP/outbox" "$V1_FILES" "$TMP/pf.out"
if command -v b3sum >/dev/null; then
  pf_measure hash bash -c 'cd "$1" && b3sum --num-threads 1 $2 >/dev/null' _ "$TMP/outbox" \
    "$(printf '%s.csv ' $V1_FILES)"
fi
# render (b): read the current snapshot's files once, as the unchanged run compares with them.
pf_measure read bash -c 'for f in $2; do cat "$1/$f.csv" >/dev/null; done' _ "$TMP/outbox" "$V1_FILES"
# publish and deliver (a): make the rendered files durable (fsync), then copy them to a
# destination folder and make that copy durable.
pf_measure publish bash -c 'for f in $2; do cat "$1/$f.csv" >"$3/$f.csv"; done; sync "$3"/*.csv; mkdir "$3/dest"; cp "$3"/*.csv "$3/dest/"; sync "$3"/dest/*.csv' \
  _ "$TMP/outbox" "$V1_FILES" "$TMP/pf.out"
# That measurement includes an unsynced write (the floor of the render's write, above).
PF_WALL[publish]=$(awk -v a="${PF_WALL[publish]}" -v b="${PF_WALL[write]:-0}" 'BEGIN { d = a - b; printf "%.2f", d < 0 ? 0 : d }')
rm -rf "$TMP/pf.out"

for i in $(seq "$REPEAT"); do
  step "(b) unchanged run ($i/$REPEAT)"
  DIRS_BEFORE=$(snapshot_dirs); OUTBOX_BEFORE=$(outbox_rows); STAMP_BEFORE=$(outbox_stamp)
  STAGING_BEFORE=$(stat -c %y "$TMP/state/staging" 2>/dev/null || echo absent)
  l=$(load1)
  run_sds "b$i"
  # A staging folder created and removed again leaves its trace in the parent's mtime.
  STAGING_AFTER=$(stat -c %y "$TMP/state/staging" 2>/dev/null || echo absent)
  measure b "b$i" "$l"
  [ "$(status_q "b$i" '.recent_runs[0].outcome')" = unchanged ] || fail_b "(b$i) outcome is $(status_q "b$i" '.recent_runs[0].outcome'), expected unchanged"
  [ "$(status_q "b$i" '.recent_runs[0].snapshot_id')" = null ] || fail_b "(b$i) the run recorded a snapshot"
  [ "$(status_q "b$i" '.current.id')" = "$SNAP_A" ] || fail_b "(b$i) the current snapshot changed"
  [ "$(snapshot_dirs)" = "$DIRS_BEFORE" ] || fail_b "(b$i) a snapshot folder was written"
  [ "$(status_q "b$i" '.pending_deliveries | length')" = 0 ] || fail_b "(b$i) a delivery was enqueued"
  [ "$(outbox_rows)" = "$OUTBOX_BEFORE" ] || fail_b "(b$i) the outbox grew ($OUTBOX_BEFORE -> $(outbox_rows) jobs)"
  [ "$(outbox_stamp)" = "$STAMP_BEFORE" ] || fail_b "(b$i) the destination's files were rewritten"
  [ -z "$(find "$TMP/state/staging" -mindepth 1 2>/dev/null)" ] || fail_b "(b$i) a staging folder was left behind"
  [ "$STAGING_BEFORE" = "$STAGING_AFTER" ] || { T3B=0; say "  a staging folder was created (and removed)"; }
  jq -e '[.recent_runs[0].files[] | .changed or (.diff.added + .diff.removed + .diff.changed) > 0] | any | not' \
    "$TMP/status.b$i" >/dev/null || fail_b "(b$i) a file is reported as changed"
  say "  snapshot folders $DIRS_BEFORE -> $(snapshot_dirs), outbox jobs $OUTBOX_BEFORE -> $(outbox_rows), destination untouched"
done

# (c) alternates: the odd repetitions add "-Zoë" to the student's first name, the even ones take
# it off again; either way exactly one row of Student.csv changes.
read -r TARGET_STUDENT OLD_NAME < <("${PSQL[@]}" -d "$DB" -AtF ' ' -c \
  "SELECT student_number, first_name FROM students WHERE enroll_status = 'A' ORDER BY student_number LIMIT 1")
for i in $(seq "$REPEAT"); do
  step "(c) one student's first name changed ($i/$REPEAT)"
  if [ "$NAME_CHANGED" = 0 ]; then
    "${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = first_name || '-Zoë' WHERE student_number = '$TARGET_STUDENT'"
    NAME_CHANGED=1
    say "  student $TARGET_STUDENT: first name '$OLD_NAME' -> '$OLD_NAME-Zoë'"
  else
    "${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = regexp_replace(first_name, '-Zoë\$', '') WHERE student_number = '$TARGET_STUDENT'"
    NAME_CHANGED=0
    say "  student $TARGET_STUDENT: first name '$OLD_NAME-Zoë' -> '$OLD_NAME'"
  fi
  l=$(load1)
  run_sds "c$i"
  measure c "c$i" "$l"
  [ "$(status_q "c$i" '.recent_runs[0].outcome')" = published ] || fail_c "(c$i) outcome is $(status_q "c$i" '.recent_runs[0].outcome'), expected published"
  check_counts "c$i"
  jq -r '.recent_runs[0].files[] | "  \(.file): changed=\(.changed) diff=\(.diff | tostring)"' "$TMP/status.c$i"
  jq -e '.recent_runs[0].files[] | select(.file == "Student.csv") | .changed and .diff.changed == 1 and .diff.added == 0 and .diff.removed == 0' \
    "$TMP/status.c$i" >/dev/null || fail_c "(c$i) Student.csv is not reported as exactly changed=1 added=0 removed=0"
  jq -e '[.recent_runs[0].files[] | select(.file != "Student.csv") | .changed or .diff == null or (.diff.added + .diff.removed + .diff.changed) > 0] | any | not' \
    "$TMP/status.c$i" >/dev/null || fail_c "(c$i) a file other than Student.csv is reported as changed"
  # The student's row as delivered (student numbers are digits: a safe pattern).
  row=$(grep "^$TARGET_STUDENT," "$TMP/outbox/Student.csv" || true)
  [ -n "$row" ] || fail_c "(c$i) student $TARGET_STUDENT is missing from the delivered Student.csv"
  if [ "$NAME_CHANGED" = 1 ]; then
    grep -qF -- "-Zoë" <<<"$row" || fail_c "(c$i) the new name is not in the delivered Student.csv"
  else
    grep -qF -- "-Zoë" <<<"$row" && fail_c "(c$i) the old name is not back in the delivered Student.csv"
  fi
done
if [ "$NAME_CHANGED" = 1 ]; then
  "${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = regexp_replace(first_name, '-Zoë\$', '') WHERE student_number = '$TARGET_STUDENT'"
  NAME_CHANGED=0
fi

say ""
say "load average after: $(load)"

# ---------------------------------------------------------------------------------------------
# Summary: markdown tables, ready for BENCHMARKS.md.
SUMMARY=1
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { if [ "$1" = 1 ]; then echo met; else echo missed; fi; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo 1 || echo 0; }
F=${WALL[floor]}
T_A=$(le "$(ratio "${WALL[a]}" "$F")" 1.3)
T_B=$(le "$(ratio "${WALL[b]}" "$F")" 1.2)
T_C=$(le "$(ratio "${WALL[c]}" "$F")" 1.4)
MAX_RSS=$(printf '%s\n' "${RSS[a]}" "${RSS[b]}" "${RSS[c]}" | sort -n | tail -1)
T_RSS=$(le "$MAX_RSS" $((256 * 1024)))
B_WRITTEN_MB=$(blocks_mb "${OUT[b]}")
T_BYTES=$([ "$T3B" = 1 ] && [ "$(le "$B_WRITTEN_MB" 1)" = 1 ] && echo 1 || echo 0)

step "summary (scale $SCALE_NORM, database $DB$([ "$ODBC" = 1 ] && echo ", sds-sync through ODBC"); $(date -u '+%Y-%m-%d %H:%M UTC'); $("$BIN" --version))"
say "each row: the lowest wall time of $REPEAT run(s); load = 1-minute load average when it started"
awk -v s="$SCALE_NORM" 'BEGIN { if (s != 1) printf "the targets are defined at scale 1.0; at scale %s they are informational\n", s }'
[ "$ODBC" = 0 ] || say "through ODBC only the memory target applies (issue 18); the times are informational"
say ""
row() { # key title target
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "${WALL[$1]}" "$(mb "${RSS[$1]}")" \
    "${CPU[$1]}" "$(blocks_mb "${OUT[$1]}")" "$(ratio "${WALL[$1]}" "$F")" "${3:-}" "${LOAD[$1]}"
}
say "| measurement | wall s | peak RSS MB | client CPU s | written MB | × floor | target (issue 17) | load |"
say "|---|--:|--:|--:|--:|--:|---|--:|"
row floor 'floor: `psql \copy` of the six queries'
row sorted 'sorted floor: the same, `ORDER BY` the file key'
if [ -n "${WALL[peer]:-}" ]; then
  T_PEER=$(le 3 "$(ratio "${WALL[peer]}" "${WALL[a]}")")
  row peer 'Python peer (psycopg 3, `scripts/bench/peer.py`)' \
    "≥ 3 × (a): $(ratio "${WALL[peer]}" "${WALL[a]}") × (a), $(verdict "$T_PEER")"
fi
row a '(a) first full export (`once`, incl. delivery)' "≤ 1.3 ×: $(verdict "$T_A")"
row b '(b) unchanged run' "≤ 1.2 ×: $(verdict "$T_B"); writes only the run record (no staging folder, ≤ 1 MB): $(verdict "$T_BYTES")"
row c '(c) one name changed' "≤ 1.4 ×: $(verdict "$T_C")"
say ""
say "Peak RSS of (a), (b), (c) ≤ 256 MB: $(mb "$MAX_RSS") MB, $(verdict "$T_RSS"). Rows: the queries return $FLOOR_ROWS, sds-sync exports $SDS_ROWS. CSV: psql $(mb $((FLOOR_BYTES / 1024))) MB, sds-sync $(mb $((SDS_BYTES / 1024))) MB."

say ""
say "Per phase, from the JSON log of the runs above (seconds; - where the log has no bounding event):"
say ""
jq -rs '
  def cell: if . == null then "-" else tostring end;
  . as $runs
  | (reduce ($runs[] | keys_unsorted[]) as $k ([]; if index([$k]) then . else . + [$k] end)) as $keys
  | "| phase | (a) first | (b) unchanged | (c) one name |",
    "|---|--:|--:|--:|",
    ($keys[] as $k | "| \($k) | \($runs | map(.[$k] | cell) | join(" | ")) |")
' "$TMP/phases.${BEST_TAG[a]}" "$TMP/phases.${BEST_TAG[b]}" "$TMP/phases.${BEST_TAG[c]}"

# Each phase of (a) and (b) next to its floor (f); "-" where a figure is missing.
ph() { # tag label-prefix...: the sum of the phases whose labels start with the prefixes
  local tag=$1
  shift
  jq -r '. as $p | [$ARGS.positional[] as $k | $p | to_entries[] | select(.key | startswith($k)) | .value | numbers]
    | if length == 0 then "-" else (add * 1000 | round / 1000) end' --args "$@" <"$TMP/phases.$tag"
}
pfw() { echo "${PF_WALL[$1]:--}"; }
sum() { awk 'BEGIN { s = 0; for (i = 1; i < ARGC; i++) { if (ARGV[i] == "-") { print "-"; exit } s += ARGV[i] } printf "%.2f", s }' "$@"; }
PA=${BEST_TAG[a]} PB=${BEST_TAG[b]}
say ""
say "Each phase against its floor (f): the same work done by a standard tool on the same bytes (seconds):"
say ""
say "| phase | floor: the same work by | floor s | (a) first | (b) unchanged |"
say "|---|---|--:|--:|--:|"
say "| extract (six queries) | (d) \`psql \\copy\` | $F | $(ph "$PA" 'extract, total') | $(ph "$PB" 'extract, total') |"
say "| build: check, sort, dedupe | GNU \`sort\` of the unsorted results by file key (C locale, 2 threads, in memory) | $(pfw sort) | $(ph "$PA" 'build:') | $(ph "$PB" 'build:') |"
say "| render (a): write and hash, and the gate | \`cat\` into new files (unsynced) $(pfw write) + \`b3sum\`, one thread, $(pfw hash) | $(sum "$(pfw write)" "$(pfw hash)") | $(ph "$PA" 'render:' 'compare:') | |"
say "| render (b): compare with the current snapshot | \`cat\` the snapshot's files to /dev/null | $(pfw read) | | $(ph "$PB" 'render:' 'compare:') |"
say "| publish and deliver (a) | \`sync\` the written files, \`cp\` them to a folder, \`sync\` that | $(pfw publish) | $(ph "$PA" 'publish,' 'record' 'deliver') | $(ph "$PB" 'publish,' 'record') |"
say "| start-up, connect, exit | | | $(ph "$PA" 'outside') | $(ph "$PB" 'outside') |"
say "| sum of the floors (a): extract + build + render (a) + publish; (b): extract + build + render (b) / wall | | $(sum "$F" "$(pfw sort)" "$(pfw write)" "$(pfw hash)" "$(pfw publish)") / $(sum "$F" "$(pfw sort)" "$(pfw read)") | ${WALL[a]} | ${WALL[b]} |"
if [ -n "$PEER_PHASES" ]; then
  say ""
  say "Python peer, its own phases (s): $(jq -r 'to_entries | map(select(.key | startswith("rows ") | not)) | map("\(.key) \(.value)") | join(", ")' <<<"$PEER_PHASES")"
fi

pf() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
say ""
say "functional checks:"
printf '  %-4s every run exited 0 and every file has the row count SQL computes\n' "$(pf "$TC")"
if [ "$PEER" = 1 ]; then
  printf '  %-4s the Python peer wrote the same six files as sds-sync, byte for byte\n' \
    "$(if [ "$TP" = 0 ]; then echo FAIL; elif [ "$PEER_COMPARED" = 1 ]; then echo PASS; else echo "-"; fi)"
fi
printf '  %-4s unchanged run: no snapshot published, nothing enqueued, destination untouched\n' "$(pf "$T3A")"
printf '  %-4s one-name change: Student.csv changed=1 added=0 removed=0, nothing else changed\n' "$(pf "$T4")"

if [ ${#FAILURES[@]} -gt 0 ]; then
  say ""
  say "${#FAILURES[@]} functional failure(s):"
  printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
say ""
say "functional checks: all passed"
