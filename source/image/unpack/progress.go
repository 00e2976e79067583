package unpack

import (
	"io"

	"github.com/vigil-sec/vigil/source"
)

// ProgressReader reports the bytes read from r through fn, about every 4 MiB and at the end.
func ProgressReader(r io.Reader, fn func(source.Progress), stage, item string, total int64) io.Reader {
	if fn == nil {
		return r
	}
	return &progressReader{r: r, fn: fn, p: source.Progress{Stage: stage, Item: item, Total: total}}
}

type progressReader struct {
	r    io.Reader
	fn   func(source.Progress)
	p    source.Progress
	last int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.p.Done += int64(n)
	if p.p.Done-p.last >= 4<<20 || (err != nil && p.p.Done != p.last) {
		p.last = p.p.Done
		p.fn(p.p)
	}
	return n, err
}
