# Phase timings of one sds-sync run, from the timestamps of its JSON log (jq -rs -f phases.jq).
def t: .timestamp as $s | ($s[0:19] + "Z" | fromdateiso8601)
       + ($s[20:-1] | if . == "" then 0 else ("0." + . | tonumber) end);
def at(m): map(select(.message | test(m)));
def first_t(m): at(m) | if length > 0 then (first | t) else null end;
def last_t(m): at(m) | if length > 0 then (last | t) else null end;
def secs: . * 1000 | round / 1000 | tostring + " s";
def span($name; $a; $b):
  if $a != null and $b != null then "    \($name): \($b - $a | secs)" else empty end;

first_t("^run started$") as $start
| at("^extracted$") as $ex
| last_t("^extracted$") as $exend
| (last_t("^(rows dropped|export warning)$") // $exend) as $built
| first_t("^file (compared|has no previous)") as $cmp1
| last_t("^file (compared|has no previous)") as $cmpN
| last_t("^(snapshot published|data unchanged|snapshot held)") as $pub
| first_t("^run finished$") as $fin
| (at("^delivered$") | first) as $del
| ($ex | map("    extract \(.entity): \(.rows) rows, \(.duration_ms / 1000) s") | join("\n")),
  span("extract, total (connect excluded)"; $start; $exend),
  span("build (Builder::finish: check, sort, dedup, warnings)"; $exend; $built),
  if first_t("^data unchanged") != null then
    span("fingerprint the files (render + hash into a sink, nothing written), compare"; $built; $pub)
  elif $cmp1 != null then
    span("fingerprint, write the files to staging (render, hash, fsync), diff the changed ones"; $built; $cmpN),
    span("publish (or hold) the snapshot"; $cmpN; $pub)
  else
    span("write and publish"; $built; $pub)
  end,
  span("record the run"; $pub; $fin),
  (if $del then "    deliver to the local destination: \($del.duration_ms / 1000) s" else empty end)
