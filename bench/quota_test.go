package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/internal/testenv"
	"github.com/alert-domains/alert-domains/quota"
)

// acquirer is one design of the quota under measure.
type acquirer interface {
	Acquire(ctx context.Context) (release func(), waited time.Duration, err error)
}

// quotaDesign builds one process's quota of a design on a NATS server.
type quotaDesign struct {
	name string
	make func(tb testing.TB, url string, limits []connector.Limit) acquirer
}

var quotaDesigns = []quotaDesign{
	{"process", func(tb testing.TB, _ string, limits []connector.Limit) acquirer {
		return connector.NewLimiter(limits)
	}},
	{"shared-stream", func(tb testing.TB, url string, limits []connector.Limit) acquirer {
		_, js := testenv.Connect(tb, url)
		layout := quota.NewLayout("bench", limits)
		if err := quota.Provision(context.Background(), js, layout, limits, 1, time.Second); err != nil {
			tb.Fatal(err)
		}
		s, err := quota.NewShared(layout, quota.Registration{Cloud: "public", TenantID: "t", ClientID: "c"}, limits, quota.WithHold(time.Second))
		if err != nil {
			tb.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(ctx, js)
		}()
		tb.Cleanup(func() {
			cancel()
			<-done
		})
		return s
	}},
	{"kv-cas", func(tb testing.TB, url string, limits []connector.Limit) acquirer {
		_, js := testenv.Connect(tb, url)
		kv, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "BENCH_QUOTA_KV", History: 1})
		if err != nil {
			tb.Fatal(err)
		}
		return &casLog{kv: kv, key: "registration", limits: limits}
	}},
}

// casLog is the design not chosen, kept here to measure it: the sliding
// window log of every limit in one key-value entry (8 bytes per call in the
// longest window), read, checked and written back under compare-and-set on
// the entry's revision; a conflict reads again. Times are the local clock's.
type casLog struct {
	kv     jetstream.KeyValue
	key    string
	limits []connector.Limit
}

func (c *casLog) Acquire(ctx context.Context) (func(), time.Duration, error) {
	start := time.Now()
	longest := slices.MaxFunc(c.limits, func(a, b connector.Limit) int { return int(a.Window - b.Window) }).Window
	for {
		var (
			log []int64
			rev uint64
		)
		e, err := c.kv.Get(ctx, c.key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, time.Since(start), err
		default:
			rev = e.Revision()
			v := e.Value()
			for i := 0; i+8 <= len(v); i += 8 {
				log = append(log, int64(binary.LittleEndian.Uint64(v[i:])))
			}
		}
		now := time.Now().UnixNano()
		// Drop what left the longest window; check every limit.
		first := sort.Search(len(log), func(i int) bool { return log[i] > now-int64(longest) })
		log = log[first:]
		wait := time.Duration(0)
		for _, l := range c.limits {
			in := len(log) - sort.Search(len(log), func(i int) bool { return log[i] > now-int64(l.Window) })
			if in >= l.Count {
				wait = max(wait, time.Duration(log[len(log)-l.Count]+int64(l.Window)-now))
			}
		}
		if wait > 0 {
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return nil, time.Since(start), ctx.Err()
			}
		}
		buf := make([]byte, 8*(len(log)+1))
		for i, t := range append(log, now) {
			binary.LittleEndian.PutUint64(buf[8*i:], uint64(t))
		}
		if rev == 0 {
			_, err = c.kv.Create(ctx, c.key, buf)
		} else {
			_, err = c.kv.Update(ctx, c.key, buf, rev)
		}
		if err == nil {
			return func() {}, time.Since(start), nil
		}
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			continue // another process wrote first
		}
		return nil, time.Since(start), err
	}
}

// BenchmarkQuotaAcquire measures one acquisition of a slot (p50, p99) of
// each design, with the quota never full: alone (one caller), and contended
// (3 processes × 16 callers at once, as 3 replicas with CONCURRENCY=16),
// against a nats-server process on file storage. "process" is the
// per-process limiter (no NATS).
func BenchmarkQuotaAcquire(b *testing.B) {
	ns := testenv.StartNATS(b)
	limitsOf := map[string][]connector.Limit{
		"1 window":  {{Count: 1_000_000, Window: time.Hour}},
		"2 windows": {{Count: 1_000_000, Window: time.Hour}, {Count: 1_000_000, Window: 2 * time.Hour}},
	}
	for _, windows := range []string{"1 window", "2 windows"} {
		for _, d := range quotaDesigns {
			for _, shape := range []struct {
				name       string
				procs, per int
				perCaller  int
			}{{"alone", 1, 1, 1000}, {"3x16", 3, 16, 50}} {
				b.Run(fmt.Sprintf("%s/%s/%s", d.name, windows, shape.name), func(b *testing.B) {
					var lat []time.Duration
					for range b.N {
						lat = append(lat, measureAcquire(b, d, ns.URL(), limitsOf[windows], shape.procs, shape.per, shape.perCaller)...)
					}
					slices.Sort(lat)
					b.ReportMetric(us(lat[len(lat)/2]), "p50-µs")
					b.ReportMetric(us(lat[len(lat)*99/100]), "p99-µs")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// measureAcquire runs procs processes of callers each, every caller taking
// n slots one after the other, and returns the time of each acquisition.
func measureAcquire(tb testing.TB, d quotaDesign, url string, limits []connector.Limit, procs, callers, n int) []time.Duration {
	var (
		mu  sync.Mutex
		all []time.Duration
		wg  sync.WaitGroup
	)
	errs := make(chan error, procs*callers)
	for range procs {
		q := d.make(tb, url, limits)
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := make([]time.Duration, 0, n)
				for range n {
					start := time.Now()
					release, _, err := q.Acquire(context.Background())
					if err != nil {
						errs <- err
						return
					}
					own = append(own, time.Since(start))
					release()
				}
				mu.Lock()
				all = append(all, own...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return all
}

// BenchmarkQuotaUtilisation: 3 alert-domains serve replicas share
// DEFENDER_RATE_LIMITS=20/2s (QUOTA_SCOPE=shared) and drain a backlog of 10
// windows (200 requests). It reports the calls of each full 2s window after
// the first call over the limit (mean and lowest), the most calls Defender
// saw in any sliding 2s, and the drain time against (N/L − 1) × W.
func BenchmarkQuotaUtilisation(b *testing.B) {
	const (
		n      = 200
		count  = 20
		window = 2 * time.Second
	)
	for range b.N {
		rec := &callRecorder{}
		emu := emulator.NewHandler(emulator.Config{AnyAlert: true})
		ts := httptest.NewUnstartedServer(rec.wrap(emu))
		ts.StartTLS()
		certFile := testenv.WriteCertificate(b, ts.Certificate())
		ns := testenv.StartNATS(b)
		srv := &emulator.Server{Emulator: emu, URL: ts.URL}
		env := serviceEnv(srv, certFile, ns.URL(), "DEFENDER_RATE_LIMITS=20/2s", "QUOTA_SCOPE=shared", "CACHE_TTL=0", "LOG_LEVEL=warn")
		for range 3 {
			listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(b))
			p := testenv.StartService(b, testenv.BuildBinary(b), append(env, "HTTP_LISTEN="+listen), "serve")
			p.WaitHTTPReady(b, "http://"+listen+"/readyz", time.Minute)
		}
		js := ns.JetStream(b)
		start := time.Now()
		for i := range n {
			if _, err := js.PublishAsync(serviceRequestSubject, fmt.Appendf(nil, "util_%04d_%d", i, start.UnixNano())); err != nil {
				b.Fatal(err)
			}
		}
		testenv.Eventually(b, 5*time.Minute, 20*time.Millisecond, func() bool { return rec.count() >= n }, "%d calls", n)
		drain := time.Since(start)
		times := rec.times()
		// Full windows from the first call, the last partial one left out.
		var per []float64
		for w0 := times[0]; !w0.Add(window).After(times[len(times)-1]); w0 = w0.Add(window) {
			in := 0
			for _, t := range times {
				if !t.Before(w0) && t.Before(w0.Add(window)) {
					in++
				}
			}
			per = append(per, float64(in)/count)
		}
		most := 0
		for i := range times {
			j := sort.Search(len(times), func(k int) bool { return !times[k].Before(times[i].Add(window)) })
			most = max(most, j-i)
		}
		mean := 0.0
		for _, u := range per {
			mean += u
		}
		mean /= float64(len(per))
		b.ReportMetric(mean, "calls/window/limit")
		b.ReportMetric(slices.Min(per), "lowest-window/limit")
		b.ReportMetric(float64(most), "most-in-any-2s")
		b.ReportMetric(drain.Seconds(), "drain-s")
		b.ReportMetric((time.Duration(n/count-1) * window).Seconds(), "ideal-s")
		b.ReportMetric(0, "ns/op")
		ts.Close()
	}
}

// callRecorder keeps the arrival time of every domains call.
type callRecorder struct {
	mu sync.Mutex
	at []time.Time
}

func (r *callRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if len(req.URL.Path) > 8 && req.URL.Path[len(req.URL.Path)-8:] == "/domains" {
			r.mu.Lock()
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	})
}

func (r *callRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

func (r *callRecorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.at)
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}
