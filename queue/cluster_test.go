package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/queue/queuetest"
)

// TestClusterLeaderCrash runs three NATS servers as processes, every
// stream replicated three times and every write fsynced before its ack,
// and kills the originate stream's leader with SIGKILL while publishers
// store messages: no Raft leadership is handed over, the others notice the
// silence and elect. Publishers retry a failed publish under the same
// message id, as the webhooks' senders do; probes are not retried. Every
// acknowledged message is in the stream exactly once afterwards, and
// publishing resumes once a new leader is elected (the test logs how long
// that took).
func TestClusterLeaderCrash(t *testing.T) {
	t.Parallel()
	cl, err := queuetest.StartProcessCluster(queuetest.ClusterOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Shutdown)
	nc, err := nats.Connect(cl.URL(), queue.ConnectOptions("crash-test")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	q, err := queue.New(t.Context(), nc, queue.Options{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	stream := queue.KindOriginate.Stream()
	victim, err := cl.StreamLeader(t.Context(), q.JetStream(), stream)
	if err != nil {
		t.Fatal(err)
	}

	type attempt struct {
		sent, answered time.Time
		ok             bool
	}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		attempts []attempt
		failures []error
		stop     = make(chan struct{})
		stopOnce sync.Once
		wg       sync.WaitGroup
	)
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(func() { halt(); wg.Wait() })
	integration := uuid.New()
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", g, i)
				for give := time.Now().Add(30 * time.Second); ; {
					sent := time.Now()
					_, err := q.Publish(context.Background(), queue.Message{Kind: queue.KindOriginate, IntegrationID: integration,
						MsgID: id, Data: []byte(id)})
					mu.Lock()
					attempts = append(attempts, attempt{sent: sent, answered: time.Now(), ok: err == nil})
					if err == nil {
						acked[id] = true
					}
					mu.Unlock()
					if err == nil {
						break
					}
					if time.Now().After(give) {
						mu.Lock()
						failures = append(failures, fmt.Errorf("%s not stored in 30s: %w", id, err))
						mu.Unlock()
						halt()
						return
					}
					time.Sleep(25 * time.Millisecond)
				}
			}
		})
	}
	// Probes are sent every 20ms whatever became of the previous ones, so
	// that a publish is sent soon after the crash even while the
	// publishers above wait for answers that will not come.
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Go(func() {
				id, sent := fmt.Sprintf("probe-%d", i), time.Now()
				_, err := q.Publish(context.Background(), queue.Message{Kind: queue.KindOriginate, IntegrationID: integration,
					MsgID: id, Data: []byte(id)})
				mu.Lock()
				attempts = append(attempts, attempt{sent: sent, answered: time.Now(), ok: err == nil})
				if err == nil {
					acked[id] = true
				}
				mu.Unlock()
			})
		}
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	firstAfter := func(t0 time.Time) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		var first time.Time
		for _, a := range attempts {
			if a.ok && !a.sent.Before(t0) && (first.IsZero() || a.answered.Before(first)) {
				first = a.answered
			}
		}
		return first, !first.IsZero()
	}
	eventually(t, 30*time.Second, "messages stored before the crash", func() bool { return count() >= 100 })
	crashed := time.Now()
	if err := cl.Kill(victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "publishing to resume after the crash", func() bool {
		_, ok := firstAfter(crashed)
		return ok
	})
	back, _ := firstAfter(crashed)
	resumed := count()
	eventually(t, 30*time.Second, "messages stored after the crash", func() bool { return count() >= resumed+100 })
	halt()
	wg.Wait()
	for _, err := range failures {
		t.Fatal(err)
	}
	refused := 0
	for _, a := range attempts {
		if !a.ok {
			refused++
		}
	}
	t.Logf("leader n%d killed; publishing unavailable for %s (the kill to the first publish sent after it and acknowledged); %d messages acknowledged, %d attempts failed",
		victim+1, back.Sub(crashed).Round(time.Millisecond), len(acked), refused)

	leader, err := cl.StreamLeader(t.Context(), q.JetStream(), stream)
	if err != nil || leader == victim {
		t.Fatalf("leader after the crash: %d (%v), killed %d", leader, err, victim)
	}
	s, err := q.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		stored[m.Header.Get(nats.MsgIdHdr)]++
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged %s stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n > 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
}
