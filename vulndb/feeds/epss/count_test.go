package epss

import "github.com/vigil-sec/vigil/model"

type countSink int

func (c *countSink) Advisory(*model.Advisory) error { return nil }
func (c *countSink) Enrich(*model.Enrichment) error { *c++; return nil }
func (c *countSink) Skip(string, error)             {}
