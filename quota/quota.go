// Package quota keeps the quota of every replica in JetStream: the server decides.
package quota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/connector"
)

// Scopes of QUOTA_SCOPE.
const (
	ScopeShared  = "shared"
	ScopeProcess = "process"
)

// ErrMissing is wrapped by Verify when a stream or bucket does not exist.
var ErrMissing = errors.New("quota state missing")

// Registration is the API and app registration whose calls share one quota.
type Registration struct {
	API                       connector.API
	Cloud, TenantID, ClientID string
}

// Key is the registration as a subject token: the first 16 bytes of the SHA-256
// of its fields, in hex; the endpoint API keeps the key it had before APIs were.
func (r Registration) Key() string {
	id := r.Cloud + "\x00" + strings.ToLower(r.TenantID) + "\x00" + strings.ToLower(r.ClientID) // Entra reads both without case
	if r.API != connector.MDE && r.API != "" {
		id += "\x00" + string(r.API)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// String names the registration for people: "graph public tenant/client".
func (r Registration) String() string {
	return string(r.API) + " " + r.Cloud + " " + r.TenantID + "/" + r.ClientID
}

// MaxAge is how long a slot's message lives when nobody deletes it: the
// window, the hold, and a margin for the time between a grant and the call's start.
func MaxAge(window, hold time.Duration) time.Duration {
	return window + max(hold, 0) + min(max(window/40, 25*time.Millisecond), time.Second)
}

// windowToken names a window in stream names and subjects: "60000ms" or "…ns".
func windowToken(w time.Duration) string {
	if w%time.Millisecond == 0 {
		return strconv.FormatInt(w.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatInt(int64(w), 10) + "ns"
}

// CooldownBucket is the key-value bucket of the shared cooldowns.
func CooldownBucket(consumer string) string { return "QUOTA_" + consumer + "_COOLDOWN" }

// Provision creates or updates each limit's stream and the cooldown bucket.
func Provision(ctx context.Context, js jetstream.JetStream, layout Layout, limits []connector.Limit, replicas int, hold time.Duration) error {
	for _, l := range unique(limits) {
		cfg := layout.StreamConfig(l, replicas, hold)
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("quota stream %s: %w", cfg.Name, err)
		}
	}
	kvCfg := jetstream.KeyValueConfig{
		Bucket:      CooldownBucket(layout.consumer),
		Description: "alert-domains shared Defender cooldowns (429 Retry-After) per app registration",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, kvCfg); err != nil {
		return fmt.Errorf("quota bucket %s: %w", kvCfg.Bucket, err)
	}
	return nil
}

// Verify checks that the bucket and each limit's stream exist with its count.
func Verify(ctx context.Context, js jetstream.JetStream, layout Layout, limits []connector.Limit) error {
	var errs []error
	for _, l := range unique(limits) {
		name := layout.Stream(l)
		s, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			errs = append(errs, fmt.Errorf("%w: stream %s", ErrMissing, name))
		case err != nil:
			errs = append(errs, fmt.Errorf("quota stream %s: %w", name, err))
		case s.CachedInfo().Config.MaxMsgsPerSubject != int64(l.Count):
			errs = append(errs, fmt.Errorf("quota stream %s allows %d calls per window, the rate limits say %d (start with PROVISION=true)",
				name, s.CachedInfo().Config.MaxMsgsPerSubject, l.Count))
		}
	}
	bucket := CooldownBucket(layout.consumer)
	if _, err := js.KeyValue(ctx, bucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		errs = append(errs, fmt.Errorf("%w: bucket %s", ErrMissing, bucket))
	} else if err != nil {
		errs = append(errs, fmt.Errorf("quota bucket %s: %w", bucket, err))
	}
	return errors.Join(errs...)
}

// Use is the server's count of one limit's calls in its window, per registration key.
type Use struct {
	Limit connector.Limit
	ByKey map[string]int
}

// ReadUse reads the Use of each limit (Enforced), by window then count.
func ReadUse(ctx context.Context, js jetstream.JetStream, layout Layout, limits []connector.Limit) ([]Use, error) {
	streams := unique(limits)
	out := make([]Use, 0, len(streams))
	for _, l := range streams {
		u := Use{Limit: l, ByKey: map[string]int{}}
		name, prefix := layout.Stream(l), layout.prefix(l)
		s, err := js.Stream(ctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
		}
		if err != nil {
			return nil, fmt.Errorf("quota stream %s: %w", name, err)
		}
		for subj, n := range info.State.Subjects {
			u.ByKey[subj[len(prefix):]] = int(n)
		}
		out = append(out, u)
	}
	return out, nil
}

// ReadCooldowns reads each registration key's cooldown end (server clock, past included).
func ReadCooldowns(ctx context.Context, js jetstream.JetStream, consumer string) (map[string]time.Time, error) {
	kv, err := js.KeyValue(ctx, CooldownBucket(consumer))
	var keys jetstream.KeyLister
	if err == nil {
		keys, err = kv.ListKeys(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("quota bucket %s: %w", CooldownBucket(consumer), err)
	}
	out := map[string]time.Time{}
	for k := range keys.Keys() {
		var v cooldownValue
		if e, err := kv.Get(ctx, k); err == nil && json.Unmarshal(e.Value(), &v) == nil {
			out[k] = v.Until
		}
	}
	return out, nil
}
