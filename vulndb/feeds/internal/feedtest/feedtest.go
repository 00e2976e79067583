// Package feedtest holds a recording feed.Sink for the parsers' tests.
package feedtest

import (
	"fmt"

	"github.com/vigil-sec/vigil/model"
)

// Sink records everything a parser emits.
type Sink struct {
	Advisories  []*model.Advisory
	Enrichments []*model.Enrichment
	Skips       []string
	// Stop, when set, is returned from Advisory/Enrich once that many records were received.
	Stop int
}

// Advisory implements feed.Sink.
func (s *Sink) Advisory(a *model.Advisory) error {
	s.Advisories = append(s.Advisories, a)
	return s.stop()
}

// Enrich implements feed.Sink.
func (s *Sink) Enrich(e *model.Enrichment) error {
	s.Enrichments = append(s.Enrichments, e)
	return s.stop()
}

// Skip implements feed.Sink.
func (s *Sink) Skip(record string, err error) {
	s.Skips = append(s.Skips, fmt.Sprintf("%s: %v", record, err))
}

// ErrStop is what a Sink with Stop set returns.
var ErrStop = fmt.Errorf("feedtest: stop")

func (s *Sink) stop() error {
	if s.Stop > 0 && len(s.Advisories)+len(s.Enrichments) >= s.Stop {
		return ErrStop
	}
	return nil
}
