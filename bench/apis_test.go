package bench

import (
	"testing"
)

// BenchmarkAPIs measures both Microsoft APIs side by side: for Graph and
// for the endpoint API, the baseline loop and alert-domains serve (cache
// on, every request a miss) calling that API of the emulator, each on a
// nats-server of its own, in turns (-bench.rounds). It reports, per API,
// serve's processor time per request, the ratio of serve's throughput to
// its baseline's in the same round, and Graph's serve time over the
// endpoint API's.
func BenchmarkAPIs(b *testing.B) {
	cfg := serviceConfig{concurrency: 64, cacheTTL: "1h"}
	type pair struct {
		api           string
		base, service *system
	}
	var pairs []*pair
	for _, api := range []string{"graph", "mde"} {
		svc := startService(b, cfg, "DEFENDER_API="+api)
		pairs = append(pairs, &pair{api: api,
			base:    &system{name: "baseline, " + api, target: startBaselineFor(b, *benchWorkers, api)},
			service: &system{name: "serve, " + api, target: svc.target, service: svc}})
	}
	all := []*system{pairs[0].base, pairs[0].service, pairs[1].base, pairs[1].service}
	for _, s := range all {
		st := runWorkload(b, s.target, max(*benchN/10, 100))
		progress("warm-up, %s: %v", s.name, &st)
	}
	for b.Loop() {
		for round := range *benchRounds {
			for i := range all {
				s := all[(i+round)%len(all)]
				st := runWorkload(b, s.target, *benchN)
				s.rates = append(s.rates, st.perSecond())
				s.cpu = append(s.cpu, st.cpuPerRequest())
				if s.service != nil {
					s.serveCPU = append(s.serveCPU, st.procCPUPerRequest()[2])
				}
				s.failures += st.failures
				progress("round %d, %s: %v", round+1, s.name, &st)
			}
			for _, p := range pairs {
				p.service.ratios = append(p.service.ratios, p.service.rates[round]/p.base.rates[round])
			}
		}
	}
	for _, s := range all {
		if s.failures > 0 {
			b.Errorf("%s: %d failure results", s.name, s.failures)
		}
	}
	for _, p := range pairs {
		b.Logf("%s: serve cpu-µs/req %s (median %.1f); all processes cpu-µs/req %.1f, baseline's %.1f; ratio to the baseline %s (median %.2f)",
			p.api, roundList(p.service.serveCPU), median(p.service.serveCPU), median(p.service.cpu), median(p.base.cpu),
			roundList(p.service.ratios), median(p.service.ratios))
		b.ReportMetric(median(p.service.ratios), p.api+"-ratio")
		b.ReportMetric(median(p.service.serveCPU), p.api+"-serve-cpu-µs/req")
	}
	b.ReportMetric(median(pairs[0].service.serveCPU)/median(pairs[1].service.serveCPU), "graph/mde-serve-cpu")
}
