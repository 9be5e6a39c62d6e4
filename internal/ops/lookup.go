package ops

import (
	"cmp"
	"context"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// Lookup is the outcome of one alert ID of LookupAll.
type Lookup struct {
	ID     string          // as given
	Result *message.Result // the result, as the service would publish it
	Err    error           // the connector's error; nil for a success
}

// LookupAll looks up the IDs next yields, workers at a time, and emits each
// outcome in input order; next's error comes after the IDs before it.
func LookupAll(ctx context.Context, client *connector.Client, tenant string, next func() (string, bool, error), workers int, emit func(Lookup) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	order := make(chan chan Lookup, max(workers, 1)-1) // and the one awaited: workers lookups at most
	readErr := make(chan error, 1)
	go func() {
		var err error
		defer func() { readErr <- err; close(order) }()
		for ctx.Err() == nil {
			var id string
			var ok bool
			if id, ok, err = next(); err != nil || !ok {
				return
			}
			out := make(chan Lookup, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			go func() { out <- lookupOne(ctx, client, tenant, id) }()
		}
	}()
	for {
		var out chan Lookup
		var more bool
		select { // next may be waiting for input that never comes
		case out, more = <-order:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if !more {
			return cmp.Or(context.Cause(ctx), <-readErr) // sent before order was closed
		}
		select {
		case l := <-out:
			if err := emit(l); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func lookupOne(ctx context.Context, client *connector.Client, tenant, id string) Lookup {
	res, err := client.Domains(ctx, id)
	l := Lookup{ID: id, Err: err}
	if err == nil {
		l.Result = message.Success(id, res.Domains, res.Attempts, false, time.Now())
		l.Result.GraphAlertID = res.GraphAlertID
	} else {
		alertID := id
		if message.ValidateAlertID(id) != nil {
			alertID = ""
		}
		l.Result = message.Failure(alertID, err, res.Attempts, time.Now())
	}
	l.Result.Tenant, l.Result.API = tenant, string(client.API())
	return l
}
