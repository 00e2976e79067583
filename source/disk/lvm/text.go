package lvm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The LVM2 text metadata format: `name = value` settings and `name { ... }` sections, values being
// integers, quoted strings or [lists], with # comments.

type section struct {
	name     string
	values   map[string]any // int64, string or []any
	sections []*section
}

func (s *section) section(name string) *section {
	for _, c := range s.sections {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *section) num(name string) int64 {
	v, _ := s.values[name].(int64)
	return v
}

func (s *section) str(name string) string {
	v, _ := s.values[name].(string)
	return v
}

func (s *section) list(name string) []any {
	v, _ := s.values[name].([]any)
	return v
}

// has reports whether the list setting name holds the string want.
func (s *section) has(name, want string) bool {
	for _, v := range s.list(name) {
		if v == want {
			return true
		}
	}
	return false
}

const (
	maxDepth = 16
	maxItems = 1 << 16
)

type parser struct {
	s     string
	pos   int
	items int
}

func parse(text string) (*section, error) {
	p := &parser{s: text}
	root := &section{values: map[string]any{}}
	if err := p.body(root, 0, true); err != nil {
		line := strings.Count(text[:min(p.pos, len(text))], "\n") + 1
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	return root, nil
}

func (p *parser) skip() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		default:
			return
		}
	}
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.+-", c) >= 0
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.s) && isIdent(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// body reads settings and sections up to a closing brace (or the end, at the top level).
func (p *parser) body(s *section, depth int, top bool) error {
	if depth > maxDepth {
		return errors.New("sections nested too deep")
	}
	for {
		p.skip()
		if p.pos >= len(p.s) {
			if top {
				return nil
			}
			return errors.New("unexpected end of metadata")
		}
		if p.s[p.pos] == '}' {
			if top {
				return errors.New("unexpected '}'")
			}
			p.pos++
			return nil
		}
		if p.items++; p.items > maxItems {
			return errors.New("too many items")
		}
		name := p.ident()
		if name == "" {
			return fmt.Errorf("unexpected %q", p.s[p.pos])
		}
		p.skip()
		if p.pos >= len(p.s) {
			return errors.New("unexpected end of metadata")
		}
		switch p.s[p.pos] {
		case '{':
			p.pos++
			child := &section{name: name, values: map[string]any{}}
			if err := p.body(child, depth+1, false); err != nil {
				return err
			}
			s.sections = append(s.sections, child)
		case '=':
			p.pos++
			v, err := p.value(true)
			if err != nil {
				return err
			}
			s.values[name] = v
		default:
			return fmt.Errorf("unexpected %q after %s", p.s[p.pos], name)
		}
	}
}

func (p *parser) value(listOK bool) (any, error) {
	p.skip()
	if p.pos >= len(p.s) {
		return nil, errors.New("missing value")
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		var b strings.Builder
		for p.pos++; p.pos < len(p.s); p.pos++ {
			switch c := p.s[p.pos]; c {
			case '\\':
				if p.pos+1 < len(p.s) {
					p.pos++
					b.WriteByte(p.s[p.pos])
				}
			case '"':
				p.pos++
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return nil, errors.New("unterminated string")
	case c == '[' && listOK:
		p.pos++
		var out []any
		for {
			p.skip()
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				return out, nil
			}
			if p.items++; p.items > maxItems {
				return nil, errors.New("too many items")
			}
			v, err := p.value(false)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			p.skip()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
			}
		}
	default:
		tok := p.ident()
		if tok == "" {
			return nil, fmt.Errorf("unexpected %q in a value", c)
		}
		if n, err := strconv.ParseInt(tok, 10, 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(tok, 64); err == nil {
			return int64(f), nil
		}
		return tok, nil
	}
}
