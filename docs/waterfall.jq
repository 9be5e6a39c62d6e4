# Renders one request's trace from the console exporter's output (one span per line).
def t: (.[0:19] + "Z" | fromdateiso8601) + (((capture("\\.(?<f>[0-9]+)Z$").f // "0") + "00000000")[0:9] | tonumber) / 1e9;
[inputs] as $all
| ($all[] | select(.Name | startswith("process ")) | select(any(.Attributes[]?; .Key == "alert_domains.alert_id" and .Value.Value == $alert)) | .SpanContext.TraceID) as $trace
| [$all[] | select(.SpanContext.TraceID == $trace)] as $spans
| ($spans | map(.StartTime | t) | min) as $t0
| (($spans | map(.EndTime | t) | max) - $t0) as $total
| def depth($id): [$spans[] | select(.SpanContext.SpanID == $id)][0] as $s
    | if $s == null then 0 else 1 + depth($s.Parent.SpanID) end;
  $spans | sort_by(.StartTime | t) | .[]
| ((.StartTime | t) - $t0) as $start | ((.EndTime | t) - (.StartTime | t)) as $dur
| [ ("  " * (depth(.Parent.SpanID))) + .Name,
    (" " * ($start / $total * 40 | floor)) + ("#" * ([1, ($dur / $total * 40 | round)] | max)),
    (($start * 1000 * 100 | round) / 100 | tostring) + " ms",
    (($dur * 1000 * 100 | round) / 100 | tostring) + " ms",
    ([.Attributes[]? | select(.Key | test("status_code|resend_count|error.type|cached|result.status")) | "\(.Key)=\(.Value.Value)"] | join(" ")) ]
| @tsv
