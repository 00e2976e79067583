package store

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Eight callers on two pools hit the same schedule on every tick: exactly one job per interval.
func TestEnqueueDueOncePerInterval(t *testing.T) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) {
			s1, s2 := e.store(t), e.store(t)
			spec := JobSpec{Kind: "vulndb.update", DedupeKey: "vulndb.update"}
			var ids []int64
			for tick := 0; tick < 3; tick++ {
				var (
					wg  sync.WaitGroup
					won atomic.Int32
					mu  sync.Mutex
				)
				for w := 0; w < 8; w++ {
					s := []*Store{s1, s2}[w%2]
					wg.Add(1)
					go func() {
						defer wg.Done()
						id, ok, err := s.EnqueueDue(ctx, "feeds", 6*time.Hour, spec)
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							won.Add(1)
							mu.Lock()
							ids = append(ids, id)
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				if won.Load() != 1 {
					t.Fatalf("tick %d: %d callers enqueued, want 1", tick, won.Load())
				}
				// Not due again within the interval, whoever asks.
				if _, ok, err := s2.EnqueueDue(ctx, "feeds", 6*time.Hour, spec); err != nil || ok {
					t.Fatalf("enqueued again within the interval: %v %v", ok, err)
				}
				next, err := s1.NextDue(ctx, "feeds")
				must(t, err)
				if !next.Equal(e.clock.Now().Add(6 * time.Hour)) {
					t.Errorf("next due %v, want %v", next, e.clock.Now().Add(6*time.Hour))
				}
				// Finish the job so that the next interval's is a new one rather than a dedupe hit.
				j, err := s1.Claim(ctx, "w", []string{"vulndb.update"}, time.Minute)
				must(t, err)
				must(t, s1.Complete(ctx, j.ID, "w"))
				e.clock.Advance(6*time.Hour + time.Second)
			}
			jobs, err := s1.RecentJobs(ctx, JobFilter{Kind: "vulndb.update"})
			must(t, err)
			if len(jobs) != 3 || jobs[0].ID != ids[2] || jobs[2].ID != ids[0] {
				t.Errorf("jobs newest first %v, enqueued %v", jobIDs(jobs), ids)
			}
		})
	}
}

// A due schedule whose job is still waiting does not add a second one.
func TestEnqueueDueDedupes(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		manual, _, err := s.Enqueue(ctx, JobSpec{Kind: "vulndb.update", DedupeKey: "vulndb.update"})
		must(t, err)
		id, ok, err := s.EnqueueDue(ctx, "feeds", time.Hour, JobSpec{Kind: "vulndb.update", DedupeKey: "vulndb.update"})
		must(t, err)
		if !ok || id != manual {
			t.Errorf("due schedule with a waiting job: id %d ok %v, want %d true", id, ok, manual)
		}
		if jobs, _ := s.RecentJobs(ctx, JobFilter{State: JobPending}); len(jobs) != 1 {
			t.Errorf("%d pending jobs, want 1", len(jobs))
		}
	})
}

func TestRaiseState(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		if _, ok, err := s.State(ctx, "v"); ok || err != nil {
			t.Fatalf("unset state: %v %v", ok, err)
		}
		must(t, s.RaiseState(ctx, "v", 5))
		must(t, s.RaiseState(ctx, "v", 3))
		if v, ok, _ := s.State(ctx, "v"); !ok || v != 5 {
			t.Errorf("state %d %v, want 5 (never lowered)", v, ok)
		}
		must(t, s.RaiseState(ctx, "v", 9))
		if v, _, _ := s.State(ctx, "v"); v != 9 {
			t.Errorf("state %d, want 9", v)
		}
	})
}

// The exclusive fleet lock waits for shared holders and keeps new ones out (PostgreSQL only: on
// SQLite one process holds the database and the lock is a no-op).
func TestFleetLock(t *testing.T) {
	e := dialects(t)[1]
	s1, s2 := e.store(t), e.store(t)
	r1, err := s1.FleetLock(ctx, false)
	must(t, err)
	r2, err := s2.FleetLock(ctx, false)
	must(t, err) // shared holders coexist
	got := make(chan func())
	go func() {
		rel, err := s2.FleetLock(ctx, true)
		if err != nil {
			t.Error(err)
		}
		got <- rel
	}()
	select {
	case <-got:
		t.Fatal("exclusive lock granted while shared holders remain")
	case <-time.After(200 * time.Millisecond):
	}
	r1()
	r2()
	var rx func()
	select {
	case rx = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("exclusive lock not granted after the shared holders released")
	}
	blocked := make(chan struct{})
	go func() {
		rel, err := s1.FleetLock(ctx, false)
		if err == nil {
			rel()
		}
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("shared lock granted during the exclusive hold")
	case <-time.After(200 * time.Millisecond):
	}
	rx()
	<-blocked
}

func TestInventoryHashes(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA)
		for _, id := range []string{"h1", "h2", "h3"} {
			seedResource(t, s, model.Resource{Account: acctA, ID: id, Type: model.ResourceHost})
			_, err := s.PutInventory(ctx, acctA, id, "hash-"+id, nil)
			must(t, err)
		}
		read := func(since InventoryMark) (map[string]ResourceHash, InventoryMark) {
			t.Helper()
			rs, mark, err := s.InventoryHashes(ctx, since)
			must(t, err)
			out := map[string]ResourceHash{}
			for _, r := range rs {
				out[r.ID] = r
			}
			return out, mark
		}
		all, mark := read(0)
		if len(all) != 3 || all["h1"].Hash != "hash-h1" || all["h1"].Removed {
			t.Fatalf("full read %+v", all)
		}
		if s.Dialect() == SQLite {
			if mark != 0 {
				t.Errorf("SQLite mark %d", mark)
			}
			return // no marks: every read is a full one
		}
		if mark == 0 {
			t.Fatal("PostgreSQL returned the zero mark")
		}

		// h2's new hash is written by a transaction that commits only after a read that saw a later
		// transaction's write (h3's): the read after it must still find h2. A sequence number taken
		// at write time would have been passed over.
		tx, err := s.db.BeginTx(ctx, nil)
		must(t, err)
		defer tx.Rollback()
		_, err = s.exec(ctx, tx, `UPDATE resources SET inventory_hash = 'hash-h2b' WHERE account = ? AND id = 'h2'`, acctA)
		must(t, err)
		_, err = s.PutInventory(ctx, acctA, "h3", "hash-h3b", nil)
		must(t, err)
		got, mark2 := read(mark)
		if got["h3"].Hash != "hash-h3b" || got["h2"].Hash == "hash-h2b" {
			t.Fatalf("read during the open transaction %+v", got)
		}
		if _, ok := got["h1"]; ok {
			t.Errorf("h1 did not change but was read again: %+v", got)
		}
		must(t, tx.Commit())
		got, mark3 := read(mark2)
		if got["h2"].Hash != "hash-h2b" {
			t.Fatalf("the late commit was passed over: %+v", got)
		}

		// A removal counts as a change; nothing changed reads (next to) nothing.
		_, err = s.exec(ctx, s.db, `UPDATE resources SET removed_at = 1 WHERE account = ? AND id = 'h1'`, acctA)
		must(t, err)
		got, mark4 := read(mark3)
		if !got["h1"].Removed {
			t.Errorf("removal not read: %+v", got)
		}
		if got, _ := read(mark4); len(got) > 1 {
			t.Errorf("nothing changed, read %+v", got)
		}
	})
}

func jobIDs(js []*Job) []int64 {
	var out []int64
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}
