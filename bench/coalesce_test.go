package bench

import (
	"testing"

	"github.com/alert-domains/alert-domains/internal/testenv"
)

// BenchmarkServiceSharedCalls measures what sharing Defender calls between
// replicas costs: BenchmarkService (cache on) through one replica and
// through two replicas of one consumer, each with COALESCE_SCOPE=shared
// (the default) and with COALESCE_SCOPE=process, every setup on a
// nats-server of its own, beside the baseline, in turns (-bench.rounds).
// Every request is a miss. One replica alone writes no claim (it shares
// calls once it hears of another replica); two replicas write and delete
// one claim per call. It reports the medians of the rates, of their ratios
// to the baseline and of the processor time per request (the baseline's,
// of the nats-server and of every serve process).
func BenchmarkServiceSharedCalls(b *testing.B) {
	cfg := serviceConfig{concurrency: 64, cacheTTL: "1h"}
	base := &system{name: "baseline", target: startBaseline(b, *benchWorkers)}
	setup := func(name string, replicas int, scope string) *system {
		ns := testenv.StartNATS(b)
		s := &system{name: name}
		for range replicas {
			svc := startServiceOn(b, ns.URL(), []int{ns.PID()}, cfg, "COALESCE_SCOPE="+scope)
			if s.service == nil {
				s.service, s.target = svc, svc.target
			} else {
				s.target.pids = append(s.target.pids, svc.proc.PID())
			}
		}
		return s
	}
	one := setup("1 replica, COALESCE_SCOPE=shared", 1, "shared")
	oneProcess := setup("1 replica, COALESCE_SCOPE=process", 1, "process")
	two := setup("2 replicas, COALESCE_SCOPE=shared", 2, "shared")
	twoProcess := setup("2 replicas, COALESCE_SCOPE=process", 2, "process")
	all := []*system{base, one, oneProcess, two, twoProcess}
	for _, s := range all {
		st := runWorkload(b, s.target, max(*benchN/10, 100))
		s.failures += st.failures
	}
	if n := claims(b, two.target.url); n == 0 {
		b.Fatal("two replicas with COALESCE_SCOPE=shared wrote no claim")
	}
	if n := claims(b, one.target.url); n != 0 {
		b.Fatalf("one replica alone wrote %d claims", n)
	}
	for b.Loop() {
		for round := range *benchRounds {
			rates := map[*system]float64{}
			for i := range all {
				s := all[(i+round)%len(all)]
				st := runWorkload(b, s.target, *benchN)
				rates[s] = st.perSecond()
				s.rates = append(s.rates, st.perSecond())
				s.cpu = append(s.cpu, st.cpuPerRequest())
				s.failures += st.failures
				progress("round %d, %s: %v", round+1, s.name, &st)
			}
			for _, s := range all[1:] {
				s.ratios = append(s.ratios, rates[s]/rates[base])
			}
		}
	}
	for _, s := range all {
		if s.failures > 0 {
			b.Errorf("%s: %d failure results", s.name, s.failures)
		}
		b.Logf("%s: req/s %s, ratio %s, cpu-µs/req %s; medians %.0f req/s, ratio %.2f, %.0f cpu-µs/req",
			s.name, roundList(s.rates), roundList(s.ratios), roundList(s.cpu), median(s.rates), median(s.ratios), median(s.cpu))
	}
	b.ReportMetric(median(base.rates), "baseline-req/s")
	for _, m := range []struct {
		s    *system
		unit string
	}{{one, "1-shared"}, {oneProcess, "1-process"}, {two, "2-shared"}, {twoProcess, "2-process"}} {
		b.ReportMetric(median(m.s.ratios), m.unit+"-ratio")
		b.ReportMetric(median(m.s.cpu), m.unit+"-cpu-µs/req")
	}
}

// claims is the number of claims ever written to the claims stream of the
// service's default consumer on the server at url.
func claims(tb testing.TB, url string) uint64 {
	tb.Helper()
	_, js := testenv.Connect(tb, url)
	s, err := js.Stream(tb.Context(), "alert-domains-flights")
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.LastSeq
}
