package app

import (
	"context"
	"fmt"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/store/pgtest"
)

// BenchmarkSubmitUnchanged measures an unchanged resubmission through Server.Submit: the path every
// agent heartbeat-with-inventory takes, including the multi-process bookkeeping (on PostgreSQL the
// shared fleet lock, held across submissions, and the stored inventory hash read).
func BenchmarkSubmitUnchangedSQLite(b *testing.B)   { benchSubmitUnchanged(b, "") }
func BenchmarkSubmitUnchangedPostgres(b *testing.B) { benchSubmitUnchanged(b, "pg") }

func benchSubmitUnchanged(b *testing.B, pg string) {
	ctx := context.Background()
	cfg := Config{DataDir: b.TempDir()}
	if pg != "" {
		c := pgtest.Start(b)
		name, err := c.CreateDatabase(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Postgres = c.DSN(name)
	}
	srv, err := New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	const hosts = 50
	for i := 0; i < hosts; i++ {
		inv := inventory("4.17.15", "1.2.0")
		if _, err := srv.Submit(ctx, model.Resource{Account: DefaultAccount, ID: fmt.Sprint("h", i), Type: model.ResourceHost}, &inv); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		inv := inventory("4.17.15", "1.2.0")
		if _, err := srv.Submit(ctx, model.Resource{Account: DefaultAccount, ID: fmt.Sprint("h", i%hosts), Type: model.ResourceHost}, &inv); err != nil {
			b.Fatal(err)
		}
	}
}
