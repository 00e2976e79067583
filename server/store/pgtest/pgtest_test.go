package pgtest

import (
	"context"
	"database/sql"
	"testing"
)

func TestStart(t *testing.T) {
	c := Start(t)
	ctx := context.Background()
	dsn1, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dsn2, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dsn1 == dsn2 {
		t.Fatal("databases share a DSN")
	}
	db, err := sql.Open("pgx", dsn1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("query: %d %v", one, err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}
