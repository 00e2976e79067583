package store

import (
	"context"
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
// multi-row VALUES lists of at most rowsPerStmt rows.
type bulkInsert struct {
	head        string // "INSERT INTO t (a, b)"
	types       []colType
	tail        string
	rowsPerStmt int
	args        []any // row-major
}

func newBulk(table string, cols []string, types []colType, tail string, rowsPerStmt int) *bulkInsert {
	if len(cols) != len(types) {
		panic("store: bulk insert with mismatched columns and types")
	}
	return &bulkInsert{head: `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `)`, types: types, tail: tail, rowsPerStmt: rowsPerStmt}
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
	row := "(" + placeholders(len(b.types)) + ")"
	for start := 0; start < n; start += b.rowsPerStmt {
		m := min(b.rowsPerStmt, n-start)
		var sb strings.Builder
		sb.Grow(len(b.head) + len(b.tail) + m*(len(row)+2) + 8)
		sb.WriteString(b.head)
		sb.WriteString(" VALUES ")
		for i := 0; i < m; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(row)
		}
		sb.WriteString(" ")
		sb.WriteString(b.tail)
		w := len(b.types)
		if _, err := s.exec(ctx, q, sb.String(), b.args[start*w:(start+m)*w]...); err != nil {
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
