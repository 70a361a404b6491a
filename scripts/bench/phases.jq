# Phase timings of one sds-sync run, from its JSON log (jq -s --argjson wall SECONDS -f
# phases.jq LOG; wall, the process's wall time, is optional): one object,
# phase label -> seconds (null when the log lacks the events that bound it), in run order.
# scripts/bench.sh puts the objects of its runs side by side. Each phase is the time between
# two log events, so it is only as fine as the events the run logs: a phase whose events move
# or disappear shows as "-" rather than a wrong figure.
def t: .timestamp as $s | ($s[0:19] + "Z" | fromdateiso8601)
       + ($s[20:-1] | if . == "" then 0 else ("0." + . | tonumber) end);
def at(m): map(select((.message // "") | test(m)));
def first_t(m): at(m) | if length > 0 then (first | t) else null end;
def last_t(m): at(m) | if length > 0 then (last | t) else null end;
# Null too when the events come in another order than expected (a phase that moved).
def span($a; $b): if $a != null and $b != null and $b >= $a then ($b - $a) * 1000 | round / 1000 else null end;

first_t("^run started$") as $start
| at("^extracted$") as $ex
| last_t("^extracted$") as $exend
# The builder's report (drops, warnings) comes out as soon as `finish` returns.
| last_t("^(rows dropped|export warning)$") as $built
| first_t("^file (compared|has no previous)") as $cmp1
| last_t("^file (compared|has no previous)") as $cmpN
| last_t("^(snapshot published|data unchanged|snapshot held)") as $decided
| first_t("^run finished$") as $fin
| (map(t) | max) as $last
| [
    ($ex[] | {key: "extract \(.entity) (\(.rows) rows)", value: (.duration_ms / 1000)}),
    {key: "extract, total (`run started` to the last `extracted`)", value: span($start; $exend)},
    {key: "build: `Builder::finish` (check, sort, dedup; to its drop report)", value: span($exend; $built)},
    {key: "render: write or compare, hash; and the gate when changed (to the first `file compared`)",
     value: span($built // $exend; $cmp1)},
    {key: "  of which the publish gate, beside the render (`files gated`)",
     value: (at("^files gated$") | if length > 0 then (map(.duration_ms) | add / 1000) else null end)},
    {key: "compare: diff the changed files (first to last `file compared`)", value: span($cmp1; $cmpN)},
    {key: "publish, or decide unchanged/held", value: span($cmpN; $decided)},
    {key: "record the run (to `run finished`)", value: span($decided; $fin)},
    {key: "deliver to the local folder (`delivered`)",
     value: (at("^delivered$") | if length > 0 then (map(.duration_ms) | add / 1000) else null end)},
    {key: "outside the log: start-up, connect, exit (wall minus `run started`..last event)",
     value: (span($start; $last) as $logged
             | if $logged != null and $ARGS.named.wall != null
               then ($ARGS.named.wall - $logged) * 1000 | round / 1000 else null end)}
  ]
| from_entries
