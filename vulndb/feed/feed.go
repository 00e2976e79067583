// Package feed defines how upstream vulnerability feeds are parsed: each format's parser reads the
// upstream bytes and hands normalized records to a Sink (the database importer, or a test).
package feed

import (
	"context"
	"io"

	"github.com/vigil-sec/vigil/model"
)

// Sink receives what a parser reads. Returning an error stops the parse.
type Sink interface {
	// Advisory receives one matching record.
	Advisory(a *model.Advisory) error
	// Enrich receives what a non-matching source says about one vulnerability.
	Enrich(e *model.Enrichment) error
	// Skip reports a malformed record that was skipped; feeds keep going after it.
	Skip(record string, err error)
}

// Parser reads one file in one upstream format. name is the file's name (for messages and for formats
// that depend on it, such as an Alpine secdb's release and repository). A parser returns an error
// only when the file as a whole is unusable (truncated, not that format); single bad records go to
// Sink.Skip.
type Parser interface {
	Parse(ctx context.Context, name string, r io.Reader, sink Sink) error
}

// ParserFunc adapts a function to Parser.
type ParserFunc func(ctx context.Context, name string, r io.Reader, sink Sink) error

// Parse implements Parser.
func (f ParserFunc) Parse(ctx context.Context, name string, r io.Reader, sink Sink) error {
	return f(ctx, name, r, sink)
}
