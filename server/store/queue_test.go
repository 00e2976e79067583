package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func TestJobsLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		id1, created, err := s.Enqueue(ctx, JobSpec{Kind: "rescan", Account: acctA, Payload: []byte(`{"resource":"i-1"}`), DedupeKey: "rescan:i-1", MaxAttempts: 2})
		must(t, err)
		if !created {
			t.Fatal("first enqueue not created")
		}
		dup, created, err := s.Enqueue(ctx, JobSpec{Kind: "rescan", DedupeKey: "rescan:i-1"})
		must(t, err)
		if created || dup != id1 {
			t.Errorf("dedupe: id %d created %v, want %d false", dup, created, id1)
		}
		later, _, err := s.Enqueue(ctx, JobSpec{Kind: "rescan", RunAt: e.clock.Now().Add(time.Hour)})
		must(t, err)
		other, _, err := s.Enqueue(ctx, JobSpec{Kind: "feed-sync"})
		must(t, err)

		if _, err := s.Claim(ctx, "w1", []string{"nothing"}, time.Minute); !errors.Is(err, ErrNoJob) {
			t.Errorf("claim of unknown kind: %v", err)
		}
		j, err := s.Claim(ctx, "w1", []string{"rescan"}, time.Minute)
		must(t, err)
		if j.ID != id1 || j.State != JobRunning || j.Attempts != 1 || j.Worker != "w1" || string(j.Payload) != `{"resource":"i-1"}` || j.Account != acctA {
			t.Fatalf("claimed %+v", j)
		}
		// Still deduplicated while running.
		if _, created, _ := s.Enqueue(ctx, JobSpec{Kind: "rescan", DedupeKey: "rescan:i-1"}); created {
			t.Error("dedupe key reused while running")
		}
		if _, err := s.Claim(ctx, "w2", []string{"rescan"}, time.Minute); !errors.Is(err, ErrNoJob) {
			t.Errorf("future job claimed early: %v", err)
		}
		if err := s.Complete(ctx, id1, "w2"); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("complete by a non-owner: %v", err)
		}
		// Fail with retry: back to pending after the backoff.
		dead, err := s.Fail(ctx, id1, "w1", errors.New("registry timeout"))
		must(t, err)
		if dead {
			t.Fatal("dead after first failure")
		}
		j, _ = s.GetJob(ctx, id1)
		if j.State != JobPending || j.LastError != "registry timeout" || !j.RunAt.Equal(e.clock.Now().Add(10*time.Second)) {
			t.Errorf("after fail %+v", j)
		}
		if _, err := s.Claim(ctx, "w1", []string{"rescan"}, time.Minute); !errors.Is(err, ErrNoJob) {
			t.Errorf("claimed during backoff: %v", err)
		}
		e.clock.Advance(10 * time.Second)
		j, err = s.Claim(ctx, "w1", []string{"rescan"}, time.Minute)
		must(t, err)
		if j.ID != id1 || j.Attempts != 2 {
			t.Fatalf("retry claimed %+v", j)
		}
		dead, err = s.Fail(ctx, id1, "w1", errors.New("again"))
		must(t, err)
		if !dead {
			t.Error("not dead after max attempts")
		}
		// Dead releases the dedupe key.
		if _, created, _ := s.Enqueue(ctx, JobSpec{Kind: "rescan", DedupeKey: "rescan:i-1"}); !created {
			t.Error("dedupe key held by a dead job")
		}
		j, err = s.Claim(ctx, "w1", []string{"feed-sync", "rescan"}, time.Minute)
		must(t, err)
		if j.ID != other {
			t.Errorf("claimed %d, want oldest ready %d", j.ID, other)
		}
		must(t, s.Complete(ctx, other, "w1"))
		if err := s.Complete(ctx, other, "w1"); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("complete twice: %v", err)
		}
		j, err = s.Claim(ctx, "w1", []string{"rescan"}, time.Minute)
		must(t, err)
		dead, err = s.Fail(ctx, j.ID, "w1", Permanent(errors.New("bad payload")))
		must(t, err)
		if !dead {
			t.Error("permanent failure retried")
		}
		deadJobs, err := s.ListJobs(ctx, JobDead, 10)
		must(t, err)
		if len(deadJobs) != 2 {
			t.Errorf("%d dead jobs", len(deadJobs))
		}
		e.clock.Advance(2 * time.Hour)
		j, err = s.Claim(ctx, "w1", []string{"rescan"}, time.Minute)
		must(t, err)
		if j.ID != later {
			t.Errorf("claimed %d, want the delayed job %d", j.ID, later)
		}
		n, err := s.PurgeJobs(ctx, e.clock.Now())
		must(t, err)
		if n != 3 {
			t.Errorf("purged %d, want 3 (1 done, 2 dead)", n)
		}
	})
}

func TestJobLeaseExpiry(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		id, _, err := s.Enqueue(ctx, JobSpec{Kind: "match", MaxAttempts: 2})
		must(t, err)
		j, err := s.Claim(ctx, "crashed", []string{"match"}, 30*time.Second)
		must(t, err)
		// The worker dies. Before the lease ends nobody else gets the job.
		e.clock.Advance(29 * time.Second)
		if _, err := s.Claim(ctx, "w2", []string{"match"}, 30*time.Second); !errors.Is(err, ErrNoJob) {
			t.Fatalf("claimed under a live lease: %v", err)
		}
		must(t, s.Heartbeat(ctx, j.ID, "crashed", 30*time.Second)) // a last heartbeat, then silence
		e.clock.Advance(31 * time.Second)
		j2, err := s.Claim(ctx, "w2", []string{"match"}, 30*time.Second)
		must(t, err)
		if j2.ID != id || j2.Attempts != 2 || j2.Worker != "w2" {
			t.Fatalf("reclaimed %+v", j2)
		}
		if err := s.Complete(ctx, id, "crashed"); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("old worker completed a reclaimed job: %v", err)
		}
		// w2 crashes too, on the last attempt: the job goes dead instead of running a third time.
		e.clock.Advance(time.Minute)
		if _, err := s.Claim(ctx, "w3", []string{"match"}, 30*time.Second); !errors.Is(err, ErrNoJob) {
			t.Fatalf("claim after last attempt: %v", err)
		}
		j3, _ := s.GetJob(ctx, id)
		if j3.State != JobDead {
			t.Errorf("state %s, want dead", j3.State)
		}
	})
}

// TestConcurrentClaims runs claimers on two separate pools against one database: no job is claimed
// twice and every job is claimed.
func TestConcurrentClaims(t *testing.T) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) {
			s1, s2 := e.store(t), e.store(t)
			const jobs = 60
			for i := 0; i < jobs; i++ {
				_, _, err := s1.Enqueue(ctx, JobSpec{Kind: "k", Payload: []byte(fmt.Sprint(i))})
				must(t, err)
			}
			var (
				mu      sync.Mutex
				claimed = map[int64]string{}
				wg      sync.WaitGroup
				errs    = make(chan error, 8)
			)
			for w := 0; w < 8; w++ {
				s := s1
				if w%2 == 1 {
					s = s2
				}
				worker := fmt.Sprintf("w%d", w)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						j, err := s.Claim(ctx, worker, []string{"k"}, time.Hour)
						if errors.Is(err, ErrNoJob) {
							return
						}
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						if prev, ok := claimed[j.ID]; ok {
							errs <- fmt.Errorf("job %d claimed by %s and %s", j.ID, prev, worker)
						}
						claimed[j.ID] = worker
						mu.Unlock()
						if err := s.Complete(ctx, j.ID, worker); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if len(claimed) != jobs {
				t.Errorf("%d jobs claimed, want %d", len(claimed), jobs)
			}
			workers := map[string]bool{}
			for _, w := range claimed {
				workers[w] = true
			}
			t.Logf("%d workers took part", len(workers))
		})
	}
}

func TestOutbox(t *testing.T) {
	each(t, func(t *testing.T, e env, s *Store) {
		seedAccounts(t, s, acctA, acctB)
		for _, acc := range []string{acctA, acctB} {
			var evs []model.OutboxEvent
			for i := 0; i < 3; i++ {
				evs = append(evs, model.OutboxEvent{ID: fmt.Sprintf("%s-%d", acc, i), Type: model.EventFindingCreated, Account: acc,
					Subject: "f", Data: json.RawMessage(`{"severity":"HIGH"}`)})
			}
			must(t, s.ApplyChanges(ctx, Changes{Account: acc, Events: evs}))
		}
		batch, err := s.ClaimEvents(ctx, 4, time.Minute)
		must(t, err)
		if len(batch) != 4 || batch[0].Event.ID != acctA+"-0" || batch[3].Event.ID != acctB+"-0" || string(batch[0].Event.Data) != `{"severity":"HIGH"}` {
			t.Fatalf("first batch %+v", batch)
		}
		if batch[0].Event.Time.IsZero() || batch[0].State != EventPending {
			t.Errorf("record %+v", batch[0])
		}
		rest, err := s.ClaimEvents(ctx, 10, time.Minute)
		must(t, err)
		if len(rest) != 2 {
			t.Fatalf("second claim got %d, want the 2 unleased", len(rest))
		}
		must(t, s.MarkDelivered(ctx, batch[0].Seq, batch[1].Seq))
		must(t, s.MarkFailed(ctx, batch[2].Seq, e.clock.Now().Add(5*time.Minute), "HTTP 503"))
		must(t, s.DeadLetter(ctx, batch[3].Seq, "HTTP 410"))
		// rest's lease expires: they come back; the failed one waits for its next attempt.
		e.clock.Advance(2 * time.Minute)
		again, err := s.ClaimEvents(ctx, 10, time.Minute)
		must(t, err)
		if len(again) != 2 || again[0].Seq != rest[0].Seq {
			t.Errorf("after lease expiry: %+v", again)
		}
		must(t, s.MarkDelivered(ctx, again[0].Seq, again[1].Seq))
		e.clock.Advance(4 * time.Minute)
		retry, err := s.ClaimEvents(ctx, 10, time.Minute)
		must(t, err)
		if len(retry) != 1 || retry[0].Seq != batch[2].Seq || retry[0].Attempts != 1 || retry[0].LastError != "HTTP 503" {
			t.Fatalf("retry %+v", retry)
		}
		must(t, s.DeadLetter(ctx, retry[0].Seq, "HTTP 503 again"))
		if err := s.MarkFailed(ctx, retry[0].Seq, e.clock.Now(), "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("mark failed on a dead letter: %v", err)
		}

		dl, err := s.ListDeadLetters(ctx, []string{acctA}, 10, "")
		must(t, err)
		if len(dl.Records) != 1 || dl.Records[0].Event.ID != acctA+"-2" || dl.Records[0].Attempts != 2 || dl.Records[0].LastError != "HTTP 503 again" {
			t.Errorf("A's dead letters %+v", dl.Records)
		}
		both, err := s.ListDeadLetters(ctx, []string{acctA, acctB}, 1, "")
		must(t, err)
		more, err := s.ListDeadLetters(ctx, []string{acctA, acctB}, 1, both.NextToken)
		must(t, err)
		if len(both.Records) != 1 || len(more.Records) != 1 || more.NextToken != "" || both.Records[0].Seq >= more.Records[0].Seq {
			t.Errorf("dead letter pages %+v %+v", both, more)
		}
		if err := s.RetryDeadLetter(ctx, acctA, batch[3].Seq); !errors.Is(err, ErrNotFound) {
			t.Errorf("A retried B's dead letter: %v", err)
		}
		must(t, s.RetryDeadLetter(ctx, acctB, batch[3].Seq))
		re, err := s.ClaimEvents(ctx, 10, time.Minute)
		must(t, err)
		if len(re) != 1 || re[0].Seq != batch[3].Seq || re[0].Attempts != 0 {
			t.Errorf("retried dead letter %+v", re)
		}
		must(t, s.MarkDelivered(ctx, re[0].Seq))
		e.clock.Advance(time.Second)
		n, err := s.PurgeDelivered(ctx, e.clock.Now())
		must(t, err)
		if n != 5 {
			t.Errorf("purged %d delivered, want 5", n)
		}
	})
}

// TestConcurrentEventClaims: two pools claiming outbox batches never share an event.
func TestConcurrentEventClaims(t *testing.T) {
	for _, e := range dialects(t) {
		t.Run(e.name, func(t *testing.T) {
			s1, s2 := e.store(t), e.store(t)
			seedAccounts(t, s1, acctA)
			var evs []model.OutboxEvent
			for i := 0; i < 200; i++ {
				evs = append(evs, model.OutboxEvent{ID: fmt.Sprint("e", i), Type: model.EventFindingUpdated, Account: acctA})
			}
			must(t, s1.ApplyChanges(ctx, Changes{Account: acctA, Events: evs}))
			var (
				mu   sync.Mutex
				seen = map[int64]int{}
				wg   sync.WaitGroup
			)
			for w := 0; w < 6; w++ {
				s := []*Store{s1, s2}[w%2]
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						b, err := s.ClaimEvents(ctx, 7, time.Hour)
						if err != nil {
							t.Error(err)
							return
						}
						if len(b) == 0 {
							return
						}
						mu.Lock()
						for _, r := range b {
							seen[r.Seq]++
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(seen) != 200 {
				t.Errorf("%d events claimed, want 200", len(seen))
			}
			for seq, n := range seen {
				if n > 1 {
					t.Errorf("event %d claimed %d times", seq, n)
				}
			}
		})
	}
}
