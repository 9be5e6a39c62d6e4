package ops

import (
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

// LookupAll looks up the IDs next yields with client, workers at a time,
// and calls emit with each outcome in input order; tenant is put in every
// result. It returns next's error once the IDs before it were emitted,
// emit's error at once, and context.Cause(ctx) when ctx ends first.
func LookupAll(ctx context.Context, client *connector.Client, tenant string, next func() (string, bool, error), workers int, emit func(Lookup) error) error {
	type job struct {
		id  string
		out chan Lookup
	}
	jobs := make(chan job)
	order := make(chan chan Lookup, workers)
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(jobs)
		for ctx.Err() == nil {
			id, ok, err := next()
			if err != nil {
				readErr <- err
				return
			}
			if !ok {
				return
			}
			out := make(chan Lookup, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{id, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		go func() {
			for j := range jobs {
				l := lookupOne(ctx, client, j.id)
				l.Result.Tenant, l.Result.API = tenant, string(client.API())
				j.out <- l
			}
		}()
	}

	for {
		var (
			out chan Lookup
			ok  bool
			l   Lookup
		)
		select {
		case out, ok = <-order:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if !ok {
			break
		}
		select {
		case l = <-out:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if err := emit(l); err != nil {
			return err
		}
	}
	select {
	case err := <-readErr:
		return err
	default:
		return nil
	}
}

// lookupOne looks up one alert.
func lookupOne(ctx context.Context, client *connector.Client, id string) Lookup {
	res, err := client.Domains(ctx, id)
	now := time.Now()
	if err == nil {
		r := message.Success(id, res.Domains, res.Attempts, false, now)
		r.GraphAlertID = res.GraphAlertID
		return Lookup{ID: id, Result: r}
	}
	alertID := id
	if message.ValidateAlertID(id) != nil {
		alertID = ""
	}
	return Lookup{ID: id, Result: message.Failure(alertID, err, res.Attempts, now), Err: err}
}
