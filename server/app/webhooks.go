package app

import (
	"context"

	"github.com/vigil-sec/vigil/server/events"
	"github.com/vigil-sec/vigil/server/events/storeoutbox"
)

// Webhook is a webhook endpoint given in the server's configuration; it receives every account's
// events. Accounts manage their own sinks through the API (/v1/webhooks, see sinks.go).
type Webhook struct {
	URL    string
	Secret string
	Types  []string
}

// allAccounts is the sink account of configured webhooks.
const allAccounts = "*"

func (s *Server) dispatcher() (*events.Dispatcher, error) {
	cfgSinks, err := configSinks(s.cfg.Webhooks)
	if err != nil {
		return nil, err
	}
	src := &sinkSource{st: s.Store, config: events.NewMemSinks(cfgSinks...)}
	cfg := events.Config{
		Source:  "urn:vigil:" + firstNonEmpty(s.cfg.Hostname, "server"),
		Visible: src.visible,
		Guard:   s.cfg.WebhookGuard,
		OnError: func(err error) { s.log.Error("webhook delivery", "error", err) },
		Now:     s.now,
	}
	if m := s.webhookMetrics; m != nil {
		cfg.OnAttempt = m.OnAttempt
		cfg.OnError = func(err error) { m.OnError(err); s.log.Error("webhook delivery", "error", err) }
	}
	return events.NewDispatcher(storeoutbox.New(s.Store), src, cfg)
}

// DeliverEvents runs webhook delivery until ctx ends: to the configured webhooks and to every
// account's sinks. Events no sink wants are completed as they are claimed.
func (s *Server) DeliverEvents(ctx context.Context) error {
	d, err := s.dispatcher()
	if err != nil {
		return err
	}
	s.mgmt.dispatcher.Store(d)
	defer s.mgmt.dispatcher.CompareAndSwap(d, nil)
	return d.Run(ctx)
}
