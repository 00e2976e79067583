package unpack

import "io"

// readahead decompresses in its own goroutine while the caller parses tar headers and copies kept
// content, so that the two overlap on a second core. Buffers are recycled: memory is chunk*(slots+1).
type readahead struct {
	full  chan chunk
	free  chan []byte
	done  chan struct{}
	exit  chan struct{}
	cur   chunk
	pos   int
	err   error
	close bool
}

type chunk struct {
	b   []byte
	err error
}

const (
	raChunk = 256 << 10
	raSlots = 4
)

func newReadahead(r io.Reader) *readahead {
	ra := &readahead{full: make(chan chunk, raSlots), free: make(chan []byte, raSlots+1), done: make(chan struct{}), exit: make(chan struct{})}
	for i := 0; i < raSlots+1; i++ {
		ra.free <- make([]byte, raChunk)
	}
	go func() {
		defer close(ra.exit)
		defer close(ra.full)
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
			n, err := fill(r, buf)
			select {
			case ra.full <- chunk{buf[:n], err}:
			case <-ra.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

func (ra *readahead) Read(p []byte) (int, error) {
	for ra.pos >= len(ra.cur.b) {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.cur.b != nil {
			ra.free <- ra.cur.b[:cap(ra.cur.b)]
		}
		c, ok := <-ra.full
		if !ok {
			ra.err = io.EOF
			ra.cur = chunk{}
			return 0, io.EOF
		}
		ra.cur, ra.pos, ra.err = c, 0, c.err
	}
	n := copy(p, ra.cur.b[ra.pos:])
	ra.pos += n
	return n, nil
}

// stop ends the goroutine and waits for it, so that the source may be closed safely afterwards. A
// Read of the source in progress finishes first (a network read ends when its context is cancelled).
func (ra *readahead) stop() {
	if !ra.close {
		ra.close = true
		close(ra.done)
	}
	<-ra.exit
}

// fill reads until buf is full or r fails; unlike io.ReadFull it passes r's own errors through
// unchanged (a decompressor's io.ErrUnexpectedEOF must stay one).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
