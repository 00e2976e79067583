package store

import (
	"context"
	"fmt"
)

// Optimize refreshes the query planner's statistics where they are missing or stale. SQLite keeps
// none until asked: without them its planner guesses row counts (ListFindings names its indexes, but
// counts, aggregates and the rest do not), and it cannot skip a leading index column. PRAGMA optimize
// analyzes only the tables that changed enough since, each index from a bounded sample (a fraction of
// a second at a million findings; nothing when nothing changed). OpenSQLite runs it; a long-running
// server runs it after large changes, as housekeeping. PostgreSQL's autovacuum keeps its statistics.
func (s *Store) Optimize(ctx context.Context) error {
	if s.dialect != SQLite {
		return nil
	}
	// The limit is a connection setting: one connection for both statements.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: optimize: %w", err)
	}
	defer conn.Close()
	for _, stmt := range []string{`PRAGMA analysis_limit = 1000`, `PRAGMA optimize = 0x10002`, `PRAGMA analysis_limit = 0`} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store: optimize: %w", err)
		}
	}
	return nil
}
