package message

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
)

// Subjects are a deployment's subjects, each also as <subject>.<tenant>.
type Subjects struct {
	Request, Success, Failure string
	Plain                     string
}

// Tenant is the tenant subject names ("" when plain); false for a foreign subject.
func (s Subjects) Tenant(subject string) (tenant string, ok bool) {
	for _, base := range []string{s.Request, s.Success, s.Failure} {
		if subject == base {
			return "", true
		}
		if t, found := strings.CutPrefix(subject, base+"."); found && t != "" && !strings.Contains(t, ".") {
			return t, true
		}
	}
	return "", false
}

// StoredRequest is a request message as the request stream stores it.
type StoredRequest struct {
	Subject string
	Data    []byte
	Header  nats.Header
	Seq     uint64
	Stored  time.Time
}

// ErrNotOurs is what every NotOurs is.
var ErrNotOurs = errors.New("not a result of the service")

// Why a message on a result subject is not believed (a metric label).
const (
	ReasonSubject   = "subject"    // not on a result subject
	ReasonMessageID = "message_id" // no message ID of a stored request
	ReasonStatus    = "status"     // a Result-Status its subject does not say
	ReasonTenant    = "tenant"     // a Tenant header its subject does not say
	ReasonBody      = "body"       // not the documented JSON
	ReasonRequest   = "request"    // not the result of the request it names
)

// Reasons are all the reasons, in a fixed order.
var Reasons = []string{ReasonSubject, ReasonMessageID, ReasonStatus, ReasonTenant, ReasonBody, ReasonRequest}

// NotOurs is why a message on a result subject is not believed.
type NotOurs struct {
	Reason string // one of Reasons
	Detail string
}

func (e *NotOurs) Error() string        { return ErrNotOurs.Error() + ": " + e.Detail }
func (e *NotOurs) Is(target error) bool { return target == ErrNotOurs }

func notOurs(reason, format string, args ...any) *NotOurs {
	return &NotOurs{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Stored is what a message on a result subject says of itself.
type Stored struct {
	Tenant  string    // the tenant its subject names; "" on the plain subjects
	Success bool      // on a success subject
	Seq     uint64    // the request its message ID names
	Stored  time.Time // that request's store time; zero for the form without it
}

// Label reads what a stored message says of itself, if its subject and headers agree.
func (s Subjects) Label(stream, subject string, header nats.Header) (Stored, error) {
	tenant, ok := s.Tenant(subject)
	base := strings.TrimSuffix(subject, "."+tenant)
	if !ok || (base != s.Success && base != s.Failure) {
		return Stored{}, notOurs(ReasonSubject, "%s is not a result subject", Printable(subject, 256))
	}
	seq, stored, ok := ParseResultMsgID(header.Get(HeaderMsgID), stream)
	if !ok {
		return Stored{}, notOurs(ReasonMessageID, "its message ID does not name a request of %s", stream)
	}
	success := base == s.Success
	if status := header.Get(HeaderResultStatus); (status == StatusSuccess) != success || (status != StatusSuccess && status != StatusFailure) {
		return Stored{}, notOurs(ReasonStatus, "a Result-Status %q on %s", Printable(status, 64), subject)
	}
	if tenant != "" && header.Get(HeaderTenant) != tenant {
		return Stored{}, notOurs(ReasonTenant, "a Tenant header %q on %s", Printable(header.Get(HeaderTenant), 64), subject)
	}
	return Stored{Tenant: tenant, Success: success, Seq: seq, Stored: stored}, nil
}

// Believe returns the stored result if it is the service's for req, or a *NotOurs.
func (s Subjects) Believe(stream string, req StoredRequest, subject string, header nats.Header, data []byte) (*Result, error) {
	label, err := s.Label(stream, subject, header)
	if err != nil {
		return nil, err
	}
	switch {
	case label.Seq != req.Seq:
		return nil, notOurs(ReasonRequest, "it names request %d, not %d", label.Seq, req.Seq)
	case !label.Stored.Equal(req.Stored):
		return nil, notOurs(ReasonRequest, "it names a request stored at another time")
	}
	var res Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, notOurs(ReasonBody, "%v", err)
	}
	if err := s.answers(req, label, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// answers checks that res, stored as label says, answers req.
func (s Subjects) answers(req StoredRequest, label Stored, res *Result) error {
	tenant := label.Tenant
	decoded, decodeErr := Decode(req.Data, req.Header)
	named, _ := s.Tenant(req.Subject)
	named = cmp.Or(named, decoded.Tenant)
	unrouted := decodeErr != nil || res.Kind() == KindUnknownTenant || res.Kind() == KindInvalidRequest
	switch {
	case res.RequestSequence != req.Seq:
		return notOurs(ReasonRequest, "its body names request %d, not %d", res.RequestSequence, req.Seq)
	case res.Status != StatusSuccess && res.Status != StatusFailure, (res.Status == StatusSuccess) != label.Success:
		return notOurs(ReasonStatus, "a result with status %q on a %s subject", Printable(res.Status, 64), map[bool]string{true: "success", false: "failure"}[label.Success])
	case tenant != "" && res.Tenant != tenant:
		return notOurs(ReasonRequest, "its body names tenant %q, its subject %q", Printable(res.Tenant, 64), tenant)
	case tenant == "" && res.Tenant != "" && res.Tenant != s.Plain:
		return notOurs(ReasonRequest, "its body names tenant %q on the plain subjects", Printable(res.Tenant, 64))
	case res.AlertID != decoded.AlertID:
		return notOurs(ReasonRequest, "it answers alert %q, the request asks for %q", Printable(res.AlertID, 128), Printable(decoded.AlertID, 128))
	case tenant == "" && named != "" && !unrouted:
		return notOurs(ReasonRequest, "the request names tenant %q and its result names none", Printable(named, 64))
	case tenant != "" && named != "" && tenant != named:
		return notOurs(ReasonRequest, "the request names tenant %q and its result %q", Printable(named, 64), tenant)
	case tenant != "" && named == "" && decoded.EntraTenantID == "":
		return notOurs(ReasonRequest, "its result names tenant %q and the request names none", tenant)
	}
	return nil
}

// ParseResultMsgID reads a ResultMsgID of stream; any other spelling is not
// ok, since the duplicate window drops only the exact ID.
func ParseResultMsgID(id, stream string) (seq uint64, stored time.Time, ok bool) {
	rest, found := strings.CutPrefix(id, "result-"+stream+"-")
	if !found {
		return 0, time.Time{}, false
	}
	seqText, nsText, withTime := strings.Cut(rest, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil || seq == 0 {
		return 0, time.Time{}, false
	}
	if withTime {
		ns, err := strconv.ParseInt(nsText, 10, 64)
		if err != nil || ns <= 0 {
			return 0, time.Time{}, false
		}
		stored = time.Unix(0, ns)
	}
	if ResultMsgID(stream, seq, stored) != id {
		return 0, time.Time{}, false
	}
	return seq, stored, true
}

// Printable is s safe for a terminal, cut at limit bytes with "…".
func Printable(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return '\uFFFD'
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	return Cut(s, max(limit, 0)) + "…"
}
