package debian

import (
	"fmt"
	"io"
	"runtime"

	"github.com/vigil-sec/vigil/model"
)

// synthetic generates tracker packages on the fly, one resolved bookworm issue each.
type synthetic struct {
	n, i  int
	buf   []byte
	bytes int64
}

func (s *synthetic) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.i == s.n {
			return 0, io.EOF
		}
		sep := ","
		if s.i == 0 {
			sep = ""
		}
		s.buf = fmt.Appendf(nil, `%s"pkg%d": {"CVE-2024-%d": {"description": "%0200d", "scope": "remote", "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "1.%d-1"}, "fixed_version": "1.%d-1", "urgency": "low"}}}}`, sep, s.i, s.i, 0, s.i, s.i)
		s.i++
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	s.bytes += int64(n)
	return n, nil
}

type countSink struct {
	n       int
	maxHeap uint64
}

func (c *countSink) Advisory(*model.Advisory) error {
	c.n++
	if c.n%20000 == 0 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.maxHeap = max(c.maxHeap, ms.HeapAlloc)
	}
	return nil
}
func (c *countSink) Enrich(*model.Enrichment) error { return nil }
func (c *countSink) Skip(string, error)             {}
