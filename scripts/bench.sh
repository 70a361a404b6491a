#!/usr/bin/env bash
# District-scale benchmark of sds-sync against PostgreSQL (issue 9), natively or through ODBC
# (--odbc, issue 18). See BENCHMARKS.md.
#
#   scripts/bench.sh [--scale F] [--odbc] [--sorted-floor] [--regenerate] [--keep] [--no-build | --bin PATH]
#   scripts/bench.sh [--scale F] --drop
#
#   --scale F      size of the synthetic district; 1.0 = 1,800 schools, 1,000,000 students,
#                  7,500,000 enrollments (default 1.0; 0.001 runs in seconds)
#   --odbc         read the database through ODBC (driver "PostgreSQL Unicode", Debian
#                  odbc-postgresql, with UseDeclareFetch=1) instead of postgres://; the build
#                  enables the `odbc` feature, and a --bin must have it
#   --sorted-floor also time the six queries with ORDER BY their file's key (informational: the
#                  floor of a tool that must write sorted files, as sds-sync does)
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
#   3. warms the page cache, then measures wall time and peak RSS (/usr/bin/time -v) of
#      (d) the floor: the six default queries exported by `psql -c "\copy (...) TO ... CSV HEADER"`
#      (a) the first full v1 export: `sds-sync once`, fresh state dir, one local destination
#      (b) an unchanged run
#      (c) a run after one student's first name changed (UPDATE of one row, undone afterwards)
#   4. checks the functional results: row counts of every file against an independent SQL
#      count, (b) published nothing and enqueued nothing, (c) reports exactly one changed row
#      in Student.csv and nothing else; prints the figures, the ratios to the floor and the
#      issue's targets with PASS/FAIL.
#
# Exit status: 0 when every functional check passed (performance targets that are missed are
# reported as FAIL but do not fail the script), 1 on a functional failure, 2 on bad usage or a
# missing tool. PostgreSQL: PGHOST/PGPORT/PGUSER/PGPASSWORD (default postgres@127.0.0.1:5432).
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
SORTED_FLOOR=0
ODBC=0
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="${2:?--scale needs a number}"; shift 2 ;;
    --scale=*) SCALE="${1#--scale=}"; shift ;;
    --regenerate) REGENERATE=1; shift ;;
    --keep) KEEP=1; shift ;;
    --drop) DROP=1; shift ;;
    --sorted-floor) SORTED_FLOOR=1; shift ;;
    --odbc) ODBC=1; shift ;;
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
T3A=1 # unchanged run published/enqueued/touched nothing
T4=1  # one-name change reported as exactly one changed Student.csv row
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

install_pkg() { # command package
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing $2 (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  fi
  command -v "$1" >/dev/null || die "$1 is missing: install the $2 package"
}
[ -x /usr/bin/time ] || { install_pkg time time; }
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) is missing: apt-get install time"
install_pkg jq jq
install_pkg sqlite3 sqlite3 # the outbox check reads the state DB
ODBC_DRIVER="PostgreSQL Unicode"
if [ "$ODBC" = 1 ]; then
  odbcinst -q -d -n "$ODBC_DRIVER" >/dev/null 2>&1 \
    || die "the ODBC driver \"$ODBC_DRIVER\" is not installed (scripts/ci-services installs unixODBC and it)"
fi
FEATURES=()
[ "$ODBC" = 1 ] && FEATURES=(--features sds-daemon/odbc)

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
cleanup() {
  if [ -n "$TARGET_STUDENT" ]; then
    "${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = regexp_replace(first_name, '-Zoë\$', '') WHERE student_number = '$TARGET_STUDENT' AND first_name LIKE '%-Zoë'" >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# /usr/bin/time -v fields of a report file: wall seconds, max RSS kB, CPU %, FS outputs (blocks)
wall_of() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$1"; }
rss_of() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
cpu_of() { awk -F': ' '/Percent of CPU/ { print $2 }' "$1"; }
out_of() { awk -F': ' '/File system outputs/ { print $2 }' "$1"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

if [ "$ODBC" = 1 ]; then
  # UseDeclareFetch=1: psqlodbc reads through a cursor, Fetch rows at a time, instead of holding
  # the whole result in memory (its default); docs/configuration.md says so for admins too.
  SOURCE_URL="odbc:Driver={$ODBC_DRIVER};Server=$PGHOST;Port=$PGPORT;Database=$DB;Uid=$PGUSER;UseDeclareFetch=1;Fetch=10000"
else
  SOURCE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
fi
CONFIG="$TMP/config.toml"
cat >"$CONFIG" <<EOF
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
EOF
[ -n "${PGPASSWORD:-}" ] && export SDS_SYNC__SOURCE__PASSWORD="$PGPASSWORD"
export SDS_SYNC_CONFIG="$CONFIG"
unset RUST_LOG

step "source"
say "$SOURCE_URL"

step "machine"
say "nproc=$(nproc) mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
say "load average before: $(load)"
say "busiest processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -4 | awk '{ printf "%s(%s%%) ", $2, $1 }')"

step "warm-up (SELECT count(*) of every table, so every measurement reads from the page cache)"
for table in schools students staff staff_schools courses sections section_enrollments; do
  printf '%s=%s ' "$table" "$("${PSQL[@]}" -d "$DB" -Atc "SELECT count(*) FROM $table")"
done
echo

# ---------------------------------------------------------------------------------------------
step "(d) floor: psql \\copy of the six default queries, one after the other"
mkdir -p "$TMP/floor"
FLOOR_WALL=0
FLOOR_RSS=0
FLOOR_ROWS=0
printf '%-22s %10s %9s %10s\n' query rows wall_s rss_MB
while IFS=$'\t' read -r name sql; do
  out="$TMP/floor/$name.csv"
  /usr/bin/time -v -o "$TMP/time.floor.$name" \
    "${PSQL[@]}" -d "$DB" -c "\\copy ($sql) TO '$out' CSV HEADER"
  w=$(wall_of "$TMP/time.floor.$name"); r=$(rss_of "$TMP/time.floor.$name")
  rows=$(($(wc -l <"$out") - 1))
  FLOOR_ROWS=$((FLOOR_ROWS + rows))
  FLOOR_WALL=$(awk -v a="$FLOOR_WALL" -v b="$w" 'BEGIN { print a + b }')
  [ "$r" -gt "$FLOOR_RSS" ] && FLOOR_RSS=$r
  printf '%-22s %10s %9s %10s\n' "$name" "$rows" "$w" "$(mb "$r")"
done <<<"$QUERIES"
FLOOR_BYTES=$(du -cb "$TMP"/floor/*.csv | tail -1 | cut -f1)
rm -rf "$TMP/floor"
printf '%-22s %10s %9s %10s\n' total "$FLOOR_ROWS" "$FLOOR_WALL" "$(mb "$FLOOR_RSS")"

SORTED_WALL=""
if [ "$SORTED_FLOOR" = 1 ]; then
  step "(d') informational: the same queries with ORDER BY the key of their file (server-side sort)"
  declare -A SORT_KEY=([Schools]="school_id" [Students]="student_id" [Teachers]="teacher_id, school_id"
    [Sections]="school_id, course_code, section_code"
    [StudentEnrollments]="school_id, course_code, section_code, student_id"
    [TeacherRosters]="school_id, course_code, section_code, teacher_id")
  SORTED_WALL=0
  mkdir -p "$TMP/floor"
  while IFS=$'\t' read -r name sql; do
    /usr/bin/time -v -o "$TMP/time.sorted.$name" \
      "${PSQL[@]}" -d "$DB" -c "\\copy ($sql ORDER BY ${SORT_KEY[$name]:?no sort key for $name}) TO '$TMP/floor/$name.csv' CSV HEADER"
    w=$(wall_of "$TMP/time.sorted.$name")
    SORTED_WALL=$(awk -v a="$SORTED_WALL" -v b="$w" 'BEGIN { print a + b }')
    printf '%-22s %9s\n' "$name" "$w"
  done <<<"$QUERIES"
  rm -rf "$TMP/floor"
  printf '%-22s %9s\n' total "$SORTED_WALL"
fi

# ---------------------------------------------------------------------------------------------
# One sds-sync run under /usr/bin/time; its JSON log goes to $TMP/log.<tag>.
run_sds() { # tag
  local tag=$1 rc=0
  /usr/bin/time -v -o "$TMP/time.$tag" "$BIN" once >"$TMP/out.$tag" 2>"$TMP/log.$tag" || rc=$?
  if [ "$rc" != 0 ]; then
    fail "sds-sync once ($tag) exited with $rc; last log lines:"
    tail -5 "$TMP/log.$tag"
  fi
  "$BIN" status --json --runs 1 >"$TMP/status.$tag" 2>>"$TMP/log.status" \
    || fail "sds-sync status --json failed after ($tag)"
}
snapshot_dirs() { find "$TMP/state/snapshots" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l; }
outbox_rows() { # jobs in the state DB's delivery outbox ("?" without the sqlite3 CLI)
  command -v sqlite3 >/dev/null && sqlite3 "file:$TMP/state/state.sqlite?mode=ro" 'SELECT count(*) FROM outbox' 2>/dev/null || echo "?"
}
outbox_stamp() { find "$TMP/outbox" -type f -printf '%f %s %T@ %i\n' 2>/dev/null | sort; }
status_q() { jq -r "$2" "$TMP/status.$1"; }

# Phase timings of one run from the timestamps of its JSON log (scripts/bench/phases.jq).
phases() { # tag
  jq -rs -f "$ROOT/scripts/bench/phases.jq" "$TMP/log.$1" 2>/dev/null \
    || say "    (no phase timings: log not in the expected JSON shape)"
}

report_run() { # tag title
  local f="$TMP/time.$1"
  printf '  wall %s s, peak RSS %s MB, CPU %s, file system outputs %s MB\n' \
    "$(wall_of "$f")" "$(mb "$(rss_of "$f")")" "$(cpu_of "$f")" \
    "$(awk -v b="$(out_of "$f")" 'BEGIN { printf "%.1f", b * 512 / 1048576 }')"
  phases "$1"
}

check_counts() { # tag
  local file want got
  for file in $(jq -r 'keys[]' <<<"$EXPECTED"); do
    want=$(jq -r --arg f "$file" '.[$f]' <<<"$EXPECTED")
    got=$(jq -r --arg f "$file" '.recent_runs[0].files[]? | select(.file == $f) | .rows' "$TMP/status.$1")
    [ "$got" = "$want" ] || fail "($1) $file has ${got:-no} rows, expected $want"
  done
  local n
  n=$(jq -r '.recent_runs[0].files | length' "$TMP/status.$1")
  [ "$n" = 6 ] || fail "($1) $n files reported, expected the 6 files of SDS v1"
}

# ---------------------------------------------------------------------------------------------
step "(a) first full export: sds-sync once (fresh state, local destination)"
run_sds a
report_run a
[ "$(status_q a '.recent_runs[0].outcome')" = published ] || fail "(a) outcome is $(status_q a '.recent_runs[0].outcome'), expected published"
check_counts a
SNAP_A=$(status_q a '.current.id')
[ "$(status_q a '.pending_deliveries | length')" = 0 ] || fail "(a) a delivery is still pending"
for f in School Section Student Teacher StudentEnrollment TeacherRoster; do
  [ -f "$TMP/outbox/$f.csv" ] || fail "(a) $f.csv was not delivered to the local destination"
done
SDS_BYTES=$(status_q a '[.current.files[].bytes] | add')
SDS_ROWS=$(status_q a '.current.total_rows')
jq -r '.recent_runs[0].files[] | "  \(.file): \(.rows) rows, \(.bytes) bytes"' "$TMP/status.a"
grep '"rows dropped"' "$TMP/log.a" | jq -r '"  dropped: \(.file) \(.reason) \(.count)"' || true

step "(b) unchanged run"
DIRS_BEFORE=$(snapshot_dirs); OUTBOX_BEFORE=$(outbox_rows); STAMP_BEFORE=$(outbox_stamp)
STAGING_BEFORE=$(stat -c %y "$TMP/state/staging" 2>/dev/null || echo absent)
run_sds b
# A staging folder created and removed again leaves its trace in the parent's mtime.
STAGING_AFTER=$(stat -c %y "$TMP/state/staging" 2>/dev/null || echo absent)
report_run b
[ "$(status_q b '.recent_runs[0].outcome')" = unchanged ] || fail_b "(b) outcome is $(status_q b '.recent_runs[0].outcome'), expected unchanged"
[ "$(status_q b '.recent_runs[0].snapshot_id')" = null ] || fail_b "(b) the run recorded a snapshot"
[ "$(status_q b '.current.id')" = "$SNAP_A" ] || fail_b "(b) the current snapshot changed"
[ "$(snapshot_dirs)" = "$DIRS_BEFORE" ] || fail_b "(b) a snapshot folder was written"
[ "$(status_q b '.pending_deliveries | length')" = 0 ] || fail_b "(b) a delivery was enqueued"
[ "$(outbox_rows)" = "$OUTBOX_BEFORE" ] || fail_b "(b) the outbox grew ($OUTBOX_BEFORE -> $(outbox_rows) jobs)"
[ "$(outbox_stamp)" = "$STAMP_BEFORE" ] || fail_b "(b) the destination's files were rewritten"
[ -z "$(find "$TMP/state/staging" -mindepth 1 2>/dev/null)" ] || fail_b "(b) a staging folder was left behind"
jq -e '[.recent_runs[0].files[] | .changed or (.diff.added + .diff.removed + .diff.changed) > 0] | any | not' \
  "$TMP/status.b" >/dev/null || fail_b "(b) a file is reported as changed"
B_WRITTEN_MB=$(awk -v b="$(out_of "$TMP/time.b")" 'BEGIN { printf "%.1f", b * 512 / 1048576 }')
say "  snapshot folders $DIRS_BEFORE -> $(snapshot_dirs), outbox jobs $OUTBOX_BEFORE -> $(outbox_rows), destination untouched"

step "(c) one student's first name changed"
read -r TARGET_STUDENT OLD_NAME < <("${PSQL[@]}" -d "$DB" -AtF ' ' -c \
  "SELECT student_number, first_name FROM students WHERE enroll_status = 'A' ORDER BY student_number LIMIT 1")
"${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = first_name || '-Zoë' WHERE student_number = '$TARGET_STUDENT'"
say "  student $TARGET_STUDENT: first name '$OLD_NAME' -> '$OLD_NAME-Zoë'"
run_sds c
"${PSQL[@]}" -d "$DB" -c "UPDATE students SET first_name = regexp_replace(first_name, '-Zoë\$', '') WHERE student_number = '$TARGET_STUDENT'"
TARGET_STUDENT=""
report_run c
[ "$(status_q c '.recent_runs[0].outcome')" = published ] || fail_c "(c) outcome is $(status_q c '.recent_runs[0].outcome'), expected published"
check_counts c
jq -r '.recent_runs[0].files[] | "  \(.file): changed=\(.changed) diff=\(.diff | tostring)"' "$TMP/status.c"
jq -e '.recent_runs[0].files[] | select(.file == "Student.csv") | .changed and .diff.changed == 1 and .diff.added == 0 and .diff.removed == 0' \
  "$TMP/status.c" >/dev/null || fail_c "(c) Student.csv is not reported as exactly changed=1 added=0 removed=0"
jq -e '[.recent_runs[0].files[] | select(.file != "Student.csv") | .changed or .diff == null or (.diff.added + .diff.removed + .diff.changed) > 0] | any | not' \
  "$TMP/status.c" >/dev/null || fail_c "(c) a file other than Student.csv is reported as changed"
grep -q -- "$OLD_NAME-Zoë" "$TMP/outbox/Student.csv" || fail_c "(c) the new name is not in the delivered Student.csv"

say ""
say "load average after: $(load)"

# ---------------------------------------------------------------------------------------------
step "summary (scale $SCALE_NORM, database $DB$([ "$ODBC" = 1 ] && echo ", through ODBC"))"
A_WALL=$(wall_of "$TMP/time.a"); B_WALL=$(wall_of "$TMP/time.b"); C_WALL=$(wall_of "$TMP/time.c")
MAX_RSS=$(for t in a b c; do rss_of "$TMP/time.$t"; done | sort -n | tail -1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '%-34s %9s %11s %9s %10s\n' measurement wall_s peak_RSS_MB CPU "x floor"
printf '%-34s %9s %11s %9s %10s\n' "(d) floor: psql \\copy x6" "$FLOOR_WALL" "$(mb "$FLOOR_RSS")" "-" "1.00"
if [ -n "$SORTED_WALL" ]; then
  printf '%-34s %9s %11s %9s %10s\n' "(d') same, ORDER BY key (info)" "$SORTED_WALL" "-" "-" "$(ratio "$SORTED_WALL" "$FLOOR_WALL")"
fi
for t in a b c; do
  case $t in a) title="(a) first full export (once)" ;; b) title="(b) unchanged run" ;; c) title="(c) one name changed" ;; esac
  printf '%-34s %9s %11s %9s %10s\n' "$title" "$(wall_of "$TMP/time.$t")" "$(mb "$(rss_of "$TMP/time.$t")")" "$(cpu_of "$TMP/time.$t")" "$(ratio "$(wall_of "$TMP/time.$t")" "$FLOOR_WALL")"
done
say "rows: psql $FLOOR_ROWS (query rows, before the exporter's drops), sds-sync $SDS_ROWS (exported)"
say "bytes: psql $(mb $((FLOOR_BYTES / 1024))) MB of CSV, sds-sync $(mb $((SDS_BYTES / 1024))) MB"

pf() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo 1 || echo 0; }
T1=$(le "$A_WALL" "$(awk -v f="$FLOOR_WALL" 'BEGIN { print 1.3 * f }')")
T2=$(le "$MAX_RSS" $((256 * 1024)))
T3B=$([ "$STAGING_BEFORE" = "$STAGING_AFTER" ] && echo 1 || echo 0)
T3C=$(le "$B_WALL" "$FLOOR_WALL")
say ""
say "targets (issue 9)$(awk -v s="$SCALE_NORM" 'BEGIN { if (s != 1) printf " -- the performance targets are defined at scale 1.0; at scale %s they are informational", s }')$([ "$ODBC" = 1 ] && echo " -- through ODBC only the memory target applies (issue 18); the times are informational"):"
printf '  %-4s first full v1 export <= 1.3 x floor wall: %s s vs %s s (%s x)\n' "$(pf "$T1")" "$A_WALL" "$FLOOR_WALL" "$(ratio "$A_WALL" "$FLOOR_WALL")"
printf '  %-4s peak RSS of every run <= 256 MB: %s MB\n' "$(pf "$T2")" "$(mb "$MAX_RSS")"
printf '  %-4s unchanged run: no snapshot published, nothing enqueued, destination untouched\n' "$(pf "$T3A")"
printf '  %-4s unchanged run: no file written (no staging folder; the process wrote %s MB in all, state DB included)\n' "$(pf "$T3B")" "$B_WRITTEN_MB"
printf '  %-4s unchanged run no slower than the floor: %s s vs %s s (%s x)\n' "$(pf "$T3C")" "$B_WALL" "$FLOOR_WALL" "$(ratio "$B_WALL" "$FLOOR_WALL")"
printf '  %-4s one-name change: Student.csv changed=1 added=0 removed=0, nothing else changed\n' "$(pf "$T4")"

if [ ${#FAILURES[@]} -gt 0 ]; then
  say ""
  say "${#FAILURES[@]} functional failure(s):"
  printf '  %s\n' "${FAILURES[@]}"
  exit 1
fi
say ""
say "functional checks: all passed"
