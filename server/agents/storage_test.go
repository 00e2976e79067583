package agents

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/server/store"
)

func storages(t *testing.T) map[string]func(t *testing.T) Storage {
	return map[string]func(t *testing.T) Storage{
		"memory": func(*testing.T) Storage { return NewMemory() },
		"sqlite": func(t *testing.T) Storage {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.sqlite"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s, err := NewSQL(context.Background(), st.DB(), st.Dialect())
			if err != nil {
				t.Fatal(err)
			}
			// Creating the tables twice is harmless (a restart).
			if _, err := NewSQL(context.Background(), st.DB(), st.Dialect()); err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) Storage {
			st, err := store.OpenPostgres(context.Background(), pg.Database(t), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s, err := NewSQL(context.Background(), st.DB(), st.Dialect())
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestStorageConformance(t *testing.T) {
	for name, open := range storages(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
			tok := JoinToken{ID: "0123456789abcdef", Account: "a1", Name: "n", Hash: "h", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), MaxUses: 2}
			if err := st.CreateToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
			for i, want := range []error{nil, nil, ErrTokenUnusable} {
				if err := st.ConsumeToken(ctx, tok.ID, t0); !errors.Is(err, want) && err != want {
					t.Fatalf("use %d: %v, want %v", i, err, want)
				}
			}
			tok2 := tok
			tok2.ID, tok2.MaxUses = "fedcba9876543210", 10
			st.CreateToken(ctx, tok2)
			if err := st.ConsumeToken(ctx, tok2.ID, t0.Add(time.Hour)); !errors.Is(err, ErrTokenUnusable) {
				t.Fatalf("at expiry: %v", err)
			}
			if err := st.RevokeToken(ctx, "a2", tok2.ID, t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("revoke across accounts: %v", err)
			}
			st.RevokeToken(ctx, "a1", tok2.ID, t0)
			if err := st.ConsumeToken(ctx, tok2.ID, t0); !errors.Is(err, ErrTokenUnusable) {
				t.Fatalf("revoked: %v", err)
			}
			got, err := st.GetToken(ctx, tok.ID)
			if err != nil || got.Uses != 2 || got.Hash != "h" || !got.ExpiresAt.Equal(tok.ExpiresAt) {
				t.Fatalf("token %+v %v", got, err)
			}

			a := Agent{ID: "agt-1", Account: "a1", Hostname: "h1", EnrolledAt: t0, CertSerial: "s1", CertNotAfter: t0.Add(time.Hour), State: protocol.StateRunning}
			if err := st.CreateAgent(ctx, a); err != nil {
				t.Fatal(err)
			}
			st.SetCertificate(ctx, a.ID, "s2", t0.Add(2*time.Hour))
			st.RecordHeartbeat(ctx, a.ID, Heartbeat{At: t0.Add(time.Minute), Version: "0.3.1", State: protocol.StateRunning, Sensors: []string{"os-packages"}, Errors: []string{"e"}})
			got2, err := st.GetAgent(ctx, a.ID)
			if err != nil || got2.CertSerial != "s2" || got2.PrevSerial != "s1" || !got2.PrevNotAfter.Equal(a.CertNotAfter) ||
				got2.Version != "0.3.1" || len(got2.Sensors) != 1 || got2.Errors[0] != "e" || !got2.LastHeartbeat.Equal(t0.Add(time.Minute)) {
				t.Fatalf("agent %+v %v", got2, err)
			}
			if err := st.SetHeartbeatSeconds(ctx, "a2", a.ID, 30); !errors.Is(err, ErrNotFound) {
				t.Fatalf("heartbeat setting across accounts: %v", err)
			}
			if l, _ := st.ListAgents(ctx, "a2"); len(l) != 0 {
				t.Fatalf("other account sees %d agents", len(l))
			}

			// Inventories: the latest two are kept.
			for i, h := range []string{"sha256:1", "sha256:2", "sha256:3"} {
				if err := st.PutInventory(ctx, a.ID, StoredInventory{Hash: h, ReceivedAt: t0.Add(time.Duration(i) * time.Minute), Gzip: []byte{1, 2, byte(i)}}, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.Inventory(ctx, a.ID, "sha256:1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("oldest inventory kept: %v", err)
			}
			if si, err := st.Inventory(ctx, a.ID, "sha256:2"); err != nil || si.Gzip[2] != 1 {
				t.Fatalf("previous inventory: %+v %v", si, err)
			}
			if got, _ := st.GetAgent(ctx, a.ID); got.InventoryHash != "sha256:3" {
				t.Fatalf("inventory hash %q", got.InventoryHash)
			}

			// Instructions.
			for i, typ := range []string{protocol.InstructionCollectNow, protocol.InstructionSetInterval} {
				q := QueuedInstruction{Instruction: protocol.Instruction{ID: "ins-" + typ, Type: typ}, Account: "a1", AgentID: a.ID,
					Status: InstructionPending, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
				if err := st.QueueInstruction(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			d, err := st.DeliverInstructions(ctx, a.ID, t0, t0.Add(-time.Minute))
			if err != nil || len(d) != 2 || d[0].Type != protocol.InstructionCollectNow || d[0].Attempts != 1 {
				t.Fatalf("deliver %+v %v", d, err)
			}
			if d, _ := st.DeliverInstructions(ctx, "agt-other", t0, t0); len(d) != 0 {
				t.Fatalf("another agent got %+v", d)
			}
			if err := st.CompleteInstruction(ctx, "agt-other", d[0].ID, protocol.InstructionResult{OK: true}, t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("result from another agent: %v", err)
			}
			st.CompleteInstruction(ctx, a.ID, d[0].ID, protocol.InstructionResult{OK: true}, t0)
			d, _ = st.DeliverInstructions(ctx, a.ID, t0.Add(time.Hour), t0.Add(time.Minute))
			if len(d) != 1 || d[0].Type != protocol.InstructionSetInterval || d[0].Attempts != 2 {
				t.Fatalf("redeliver %+v", d)
			}
			for i := 3; i <= MaxDeliveries+1; i++ {
				d, _ = st.DeliverInstructions(ctx, a.ID, t0.Add(time.Duration(i)*time.Hour), t0.Add(time.Duration(i)*time.Hour))
				if want := i <= MaxDeliveries; (len(d) == 1) != want {
					t.Fatalf("delivery %d: %+v", i, d)
				}
			}
			list, _ := st.ListInstructions(ctx, "a1", a.ID)
			if len(list) != 2 || list[0].Status != InstructionSucceeded || list[0].ID != "ins-"+protocol.InstructionCollectNow {
				t.Fatalf("list %+v", list)
			}
			if err := st.RevokeAgent(ctx, "a1", a.ID, t0); err != nil {
				t.Fatal(err)
			}
			if got, _ := st.GetAgent(ctx, a.ID); got.RevokedAt == nil || !got.RevokedAt.Equal(t0) {
				t.Fatalf("revoked %+v", got.RevokedAt)
			}
		})
	}
}
