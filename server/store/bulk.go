package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
)

// colType is a column's type in a bulk insert: it says which PostgreSQL array carries the column.
type colType byte

const (
	colText colType = iota
	colInt
	colFloat
)

// bulkInsert is one multi-row INSERT: the table, its columns and their types, and what follows the
// rows (an ON CONFLICT clause). Rows are added with add and written by flush.
//
// On PostgreSQL the rows go as one array per column through unnest: the statement text is the same
// whatever the row count, so pgx prepares it once per connection, and the server parses and plans
// a dozen parameters instead of thousands. (Multi-row VALUES lists of varying length are each a new
// statement to prepare, parse and plan, and their plans are deep copies of every row.) SQLite gets
// one prepared one-row statement (flushRows).
type bulkInsert struct {
	head  string // "INSERT INTO t (a, b)"
	types []colType
	tail  string
	args  []any // row-major
}

func newBulk(table string, cols []string, types []colType, tail string) *bulkInsert {
	if len(cols) != len(types) {
		panic("store: bulk insert with mismatched columns and types")
	}
	return &bulkInsert{head: `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `)`, types: types, tail: tail}
}

// add appends one row: values in column order, strings for text, int64 for integers, float64 for
// floating point.
func (b *bulkInsert) add(vals ...any) { b.args = append(b.args, vals...) }

func (b *bulkInsert) rows() int { return len(b.args) / len(b.types) }

// flush writes the rows added so far and forgets them.
func (b *bulkInsert) flush(ctx context.Context, s *Store, q querier) error {
	n := b.rows()
	if n == 0 {
		return nil
	}
	defer func() { b.args = b.args[:0] }()
	if s.dialect == Postgres {
		cols := make([]any, len(b.types))
		casts := make([]string, len(b.types))
		for c, t := range b.types {
			switch t {
			case colText:
				v := make([]string, n)
				for r := range v {
					v[r] = b.args[r*len(b.types)+c].(string)
				}
				cols[c], casts[c] = v, "?::text[]"
			case colInt:
				v := make([]int64, n)
				for r := range v {
					v[r] = b.args[r*len(b.types)+c].(int64)
				}
				cols[c], casts[c] = v, "?::int8[]"
			case colFloat:
				v := make([]float64, n)
				for r := range v {
					v[r] = b.args[r*len(b.types)+c].(float64)
				}
				cols[c], casts[c] = v, "?::float8[]"
			}
		}
		// Rows keep the order they were added in (an identity column such as the outbox's sequence
		// numbers them in that order).
		names := make([]string, len(b.types))
		for c := range names {
			names[c] = "c" + strconv.Itoa(c)
		}
		_, err := s.exec(ctx, q, b.head+` SELECT `+strings.Join(names, ", ")+` FROM unnest(`+strings.Join(casts, ", ")+
			`) WITH ORDINALITY AS u (`+strings.Join(names, ", ")+`, n) ORDER BY n `+b.tail, cols...)
		return err
	}
	return b.flushRows(ctx, q)
}

// flushRows writes the rows one statement each, through one prepared statement (SQLite). A statement
// that writes several rows must be undoable on its own when a later row fails, so SQLite keeps a
// statement journal: a copy of every page it is the first to modify, thousands of pages of
// scattered indexes for a few hundred findings (a third of a feed delta's time at 2.3 M findings).
// A one-row INSERT fails before it writes anything and needs none; any failure rolls the whole
// transaction back here anyway. (BenchmarkWrite, 300 hosts: 23% less CPU for a feed delta, 14% for
// a new host, against 250-row VALUES lists.)
func (b *bulkInsert) flushRows(ctx context.Context, q querier) error {
	p, ok := q.(interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	})
	if !ok {
		return errors.New("store: bulk insert outside a transaction")
	}
	stmt, err := p.PrepareContext(ctx, b.head+" VALUES ("+placeholders(len(b.types))+") "+b.tail)
	if err != nil {
		return err
	}
	defer stmt.Close()
	w := len(b.types)
	for r := 0; r < b.rows(); r++ {
		if _, err := stmt.ExecContext(ctx, b.args[r*w:(r+1)*w]...); err != nil {
			return err
		}
	}
	return nil
}

// inList renders "col IN (?, ...)" on SQLite and "col = ANY(?)" with one text array on PostgreSQL
// (one statement text whatever the count), with its arguments.
func (s *Store) inList(col string, vals []string) (string, []any) {
	if s.dialect == Postgres {
		return col + ` = ANY(?::text[])`, []any{vals}
	}
	return col + ` IN (` + placeholders(len(vals)) + `)`, anys(vals)
}
