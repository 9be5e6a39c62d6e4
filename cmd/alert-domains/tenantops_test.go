package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// requestOn stores body as a request published to the request subject of
// tenant ("" for the plain subject).
func (o *opsEnv) requestOn(t *testing.T, tenant, body string) uint64 {
	t.Helper()
	subject := o.cfg.RequestSubject
	if tenant != "" {
		subject += "." + tenant
	}
	ack, err := o.js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// tenantFailure stores the failure of the request at seq as the service
// would for tenant ("": a request that could not be routed).
func (o *opsEnv) tenantFailure(t *testing.T, tenant, alertID string, kind message.Kind, seq uint64) {
	t.Helper()
	r := message.Failure(alertID, &connector.Error{Kind: kind, Message: string(kind)}, 0, time.Now())
	r.Tenant = tenant
	o.result(t, r, seq)
}

// republishedSeqs are the original sequences of the lines of a replay's
// output that begin with what.
func republishedSeqs(t *testing.T, out, what string) []uint64 {
	t.Helper()
	var seqs []uint64
	for line := range strings.Lines(out) {
		rest, ok := strings.CutPrefix(line, what+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		seqs = append(seqs, n)
	}
	slices.Sort(seqs)
	return seqs
}

// TestReplayTenant: --tenant takes the requests of that tenant only, found
// by the failure result's tenant, or (for a failure that names none, such
// as unknown_tenant) by the request's subject or body.
func TestReplayTenant(t *testing.T) {
	o := newOpsEnv(t, true)
	a := o.requestOn(t, "contoso", "a1")
	o.tenantFailure(t, "contoso", "a1", message.KindUnavailable, a)
	b := o.requestOn(t, "fabrikam", "b1")
	o.tenantFailure(t, "fabrikam", "b1", message.KindUnavailable, b)
	c := o.requestOn(t, "", `{"alertId":"c1","tenant":"contoso"}`)
	o.tenantFailure(t, "", "c1", message.KindUnknownTenant, c)
	d := o.requestOn(t, "contoso", "d1")
	o.tenantFailure(t, "", "d1", message.KindUnknownTenant, d)
	e := o.requestOn(t, "", "e1")
	o.tenantFailure(t, "", "e1", message.KindUnknownTenant, e)
	f := o.requestOn(t, "fabrikam", "f1")
	o.tenantFailure(t, "", "f1", message.KindUnknownTenant, f)
	g := o.requestOn(t, "contoso", "g1") // stored, no result yet

	tests := []struct {
		name string
		args []string
		want []uint64
	}{
		{"failed contoso", []string{"--failed", "--tenant", "contoso"}, []uint64{a, c, d}},
		{"failed fabrikam", []string{"--failed", "--tenant", "fabrikam"}, []uint64{b, f}},
		{"failed unknown_tenant of contoso", []string{"--failed", "--kind", "unknown_tenant", "--tenant", "contoso"}, []uint64{c, d}},
		{"failed of a tenant with none", []string{"--failed", "--tenant", "northwind"}, nil},
		{"failed every tenant", []string{"--failed"}, []uint64{a, b, c, d, e, f}},
		{"stored contoso", []string{"--since", "1h", "--tenant", "contoso"}, []uint64{a, c, d, g}},
		{"stored range fabrikam", []string{"--from-seq", strconv.FormatUint(a, 10), "--tenant", "fabrikam"}, []uint64{b, f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := o.mustRun(t, append([]string{"replay", "--dry-run"}, tt.args...)...)
			if got := republishedSeqs(t, out, "would republish"); !slices.Equal(got, tt.want) {
				t.Errorf("would republish %v, want %v; output:\n%s", got, tt.want, out)
			}
		})
	}

	// The copies go to the subject each request was first published to.
	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "replay", "--failed", "--tenant", "contoso")
	if !strings.Contains(out, "found 3 failure results (2 more in the time range are of kinds a replay cannot fix or did not match --alert/--tenant") {
		t.Errorf("summary:\n%s", out)
	}
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[uint64]string{}
	for n := before + 1; n <= s.CachedInfo().State.LastSeq; n++ {
		m, err := s.GetMsg(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		subjects[replayOf(t, m)] = m.Subject
	}
	want := map[uint64]string{a: o.cfg.RequestSubject + ".contoso", c: o.cfg.RequestSubject, d: o.cfg.RequestSubject + ".contoso"}
	if len(subjects) != len(want) {
		t.Fatalf("republished %v, want %v", subjects, want)
	}
	for seq, subj := range want {
		if subjects[seq] != subj {
			t.Errorf("copy of %d on %q, want %q", seq, subjects[seq], subj)
		}
	}
}

func TestTenantFlagUsage(t *testing.T) {
	o := &opsEnv{vars: map[string]string{}}
	for _, args := range [][]string{
		{"replay", "--failed", "--tenant", "Contoso"},
		{"replay", "--since", "1h", "--tenant", "a.b"},
		{"replay", "--failed", "--tenant", "*"},
		{"tail", "--tenant", ">"},
		{"tail", "--tenant", "-x"},
		{"publish", "--tenant", "Contoso", "a1"},
		{"publish", "--tenant", "a.b", "a1"},
	} {
		if code, _, stderr := o.run(t.Context(), args...); code != 2 || !strings.Contains(stderr, "--tenant") {
			t.Errorf("%v: exit %d, want 2 naming --tenant\n%s", args, code, stderr)
		}
	}
}

// TestPublishTenant: publish --tenant sends each request to the tenant's
// subject, REQUEST_SUBJECT.<name>.
// TestPublishStopsWhenCanceled: publish - ends at once on a signal while
// stdin stays open, after publishing what it read.
func TestPublishStopsWhenCanceled(t *testing.T) {
	o := newOpsEnv(t, true)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe() // stdin that never ends
	t.Cleanup(func() { _ = pw.Close() })
	out := newSyncBuffer()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"publish", "-"}, config.MapEnv(o.vars), pr, out, io.Discard) }()
	if _, err := io.WriteString(pw, "da1_2\n"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "the request's sequence", func(s string) bool { return strings.HasSuffix(s, "\tda1_2\n") })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("publish = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publish did not stop after the cancel")
	}
}

func TestPublishTenant(t *testing.T) {
	o := newOpsEnv(t, true)
	before := o.lastRequestSeq(t)
	out := o.mustRun(t, "publish", "--tenant", "contoso", "a1", "a2")
	s, err := o.js.Stream(t.Context(), o.cfg.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a1", "a2"} {
		m, err := s.GetMsg(t.Context(), before+uint64(i)+1)
		if err != nil || m.Subject != o.cfg.RequestSubject+".contoso" || string(m.Data) != id {
			t.Errorf("request %d: %v %v, want %s on %s.contoso\n%s", i, m, err, id, o.cfg.RequestSubject, out)
		}
	}
}

// TestTailTenant: tail --tenant shows that tenant's results and nobody
// else's; a result on the plain subjects that names the tenant, which the
// service never writes, is not shown.
func TestTailTenant(t *testing.T) {
	o := newOpsEnv(t, true)
	out, _, stop := startTail(t, o, "--json", "--tenant", "contoso")
	for i, tenant := range []string{"fabrikam", "contoso", "", "contoso", "fabrikam"} {
		id := "a" + strconv.Itoa(i)
		seq := o.requestOn(t, tenant, id)
		r := message.Success(id, nil, 1, false, time.Now())
		r.Tenant = tenant
		if tenant == "" {
			// A forged result on the plain subjects that names contoso.
			r.Tenant = "contoso"
			if _, err := o.js.PublishMsg(t.Context(), mustMessage(t, r, o.cfg.SuccessSubject, "plain-"+id)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		o.result(t, r, seq)
	}
	// The last result is fabrikam's: once a marker of contoso after it is
	// shown, everything before it was read.
	marker := message.Success("marker", nil, 1, false, time.Now())
	marker.Tenant = "contoso"
	o.result(t, marker, o.requestOn(t, "contoso", "marker"))
	text := out.waitFor(t, "the marker", func(s string) bool { return strings.Contains(s, `"marker"`) })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var ids []string
	for line := range strings.Lines(text) {
		m := json2map(t, line)
		if m["tenant"] != "contoso" {
			t.Errorf("result of another tenant shown: %s", line)
		}
		ids = append(ids, m["alertId"].(string))
	}
	if want := []string{"a1", "a3", "marker"}; !slices.Equal(ids, want) {
		t.Errorf("shown %v, want %v:\n%s", ids, want, text)
	}
}

func mustMessage(t *testing.T, r *message.Result, subject, msgID string) *nats.Msg {
	t.Helper()
	msg, err := r.Message(subject, msgID, "")
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
