package app

import (
	"context"
	"fmt"

	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/events/storeoutbox"
)

// Webhook is a webhook endpoint given in the server's configuration; it receives every account's
// events. (Per-account sinks managed through the API come with the webhook endpoints.)
type Webhook struct {
	URL    string
	Secret string
	Types  []string
}

// allAccounts is the sink account of configured webhooks.
const allAccounts = "*"

func (s *Server) dispatcher() (*events.Dispatcher, error) {
	var sinks []events.Sink
	for i, w := range s.cfg.Webhooks {
		if err := events.ValidateURL(w.URL, events.AddressGuard{}); err != nil {
			return nil, err
		}
		sinks = append(sinks, events.Sink{ID: fmt.Sprintf("config-%d", i+1), Account: allAccounts, URL: w.URL,
			Secret: w.Secret, Types: w.Types, Enabled: true})
	}
	cfg := events.Config{
		Source: "urn:vigil:" + firstNonEmpty(s.cfg.Hostname, "server"),
		Visible: func(sinkAccount, eventAccount string) bool {
			return sinkAccount == allAccounts || sinkAccount == eventAccount
		},
		OnError: func(err error) { s.log.Error("webhook delivery", "error", err) },
		Now:     s.now,
	}
	if m := s.webhookMetrics; m != nil {
		cfg.OnAttempt = m.OnAttempt
		cfg.OnError = func(err error) { m.OnError(err); s.log.Error("webhook delivery", "error", err) }
	}
	return events.NewDispatcher(storeoutbox.New(s.Store), events.NewMemSinks(sinks...), cfg)
}

// DeliverEvents runs webhook delivery until ctx ends. Without configured webhooks events stay in
// the outbox (readable, and deliverable once a webhook is configured).
func (s *Server) DeliverEvents(ctx context.Context) error {
	if len(s.cfg.Webhooks) == 0 {
		return nil
	}
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
