package crm_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/crm/nethunttest"
)

// source is one integration's CRM settings, as the store would give them.
type source struct {
	cfg     config.Integration
	secrets map[string]string
}

func (s source) Config(context.Context, uuid.UUID) (config.Integration, error) { return s.cfg, nil }
func (s source) SecretValue(_ context.Context, _ uuid.UUID, key string) (string, error) {
	return s.secrets[key], nil
}

// netHuntSource is an integration whose CRM is nh, with its secrets set.
func netHuntSource(nh *nethunttest.Server) source {
	cfg := config.Decode(nil)
	cfg.CRM = config.CRM{Kind: "nethunt", FolderID: nethunttest.Folder, BaseURL: nh.BaseURL(),
		StatusValues: map[string]string{"completed": "Called"}}
	return source{cfg: cfg, secrets: map[string]string{crm.SecretNetHuntEmail: nethunttest.Email, crm.SecretNetHuntAPIKey: nethunttest.APIKey}}
}

// netHuntClients are the CRM clients of one integration on nh, and what
// they reported as ambiguous.
func netHuntClients(t *testing.T, nh *nethunttest.Server) (*crm.Clients, uuid.UUID, *[]int) {
	t.Helper()
	c := crm.NewClients(netHuntSource(nh), nh.Client(), breaker.NewSet[any](breaker.Settings{Peer: "crm", IsSuccessful: crm.IsPermanent}))
	var mu sync.Mutex
	var ambiguous []int
	c.OnAmbiguous = func(_ uuid.UUID, matches int) {
		mu.Lock()
		ambiguous = append(ambiguous, matches)
		mu.Unlock()
	}
	return c, uuid.New(), &ambiguous
}

// TestClientsNoMatchIsNoFailure: a phone without a record, or with several
// different ones, is an answer: the agent gets no CRM variables, an update
// is a no_record, ambiguities are reported — and the breaker never opens,
// however many there are.
func TestClientsNoMatchIsNoFailure(t *testing.T) {
	t.Parallel()
	nh := nethunttest.New(t)
	nh.AddRecord(nethunttest.Folder, map[string]any{"Name": "Іван", "Phone": "+380991234567"})
	nh.AddRecord(nethunttest.Folder, map[string]any{"Name": "Іван (дубль)", "Phone": "099 123 45 67"})
	c, id, ambiguous := netHuntClients(t, nh)
	const rounds = breaker.ConsecutiveFailuresDefault + 2
	for range rounds {
		vars, err := c.Lookup(t.Context(), id, phone) // two people
		if err != nil || len(vars) != 0 {
			t.Fatalf("Lookup = %v, %v; want no variables, no error", vars, err)
		}
		if vars, err := c.Lookup(t.Context(), id, "+380671000001"); err != nil || len(vars) != 0 { // nobody
			t.Fatalf("Lookup = %v, %v; want no variables, no error", vars, err)
		}
		err = c.Apply(t.Context(), id, crm.Update{PhoneNumber: "+380671000001", Status: "completed", Outcome: "completed"})
		if !crm.IsNoRecord(err) || !crm.IsPermanent(err) {
			t.Fatalf("Apply = %v, want a permanent no_record", err)
		}
		if err := c.Apply(t.Context(), id, crm.Update{PhoneNumber: phone, Status: "completed", Outcome: "completed"}); !crm.IsNoRecord(err) {
			t.Fatalf("Apply = %v, want a no_record", err)
		}
	}
	if !c.Allows(id) {
		t.Fatal("misses opened the CRM breaker")
	}
	if len(*ambiguous) != 2*rounds || (*ambiguous)[0] != 2 {
		t.Fatalf("ambiguities reported %v, want %d of 2 matches", *ambiguous, 2*rounds)
	}
	if w := nh.Writes(); len(w) != 0 {
		t.Fatalf("%d writes without a record", len(w))
	}
}

// TestClientsObeyRetryAfter: after a 429, nothing is sent to that
// integration's CRM until its Retry-After has passed; other integrations
// are not held.
func TestClientsObeyRetryAfter(t *testing.T) {
	t.Parallel()
	nh := nethunttest.New(t)
	rec := nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": phone})
	c, id, _ := netHuntClients(t, nh)
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	u := crm.Update{RecordID: rec, PhoneNumber: phone, Status: "completed", Outcome: "completed"}

	nh.RateLimit(1, "30")
	err := c.Apply(t.Context(), id, u)
	if crm.RetryAfter(err) != 30*time.Second || crm.IsHeld(err) || crm.IsPermanent(err) {
		t.Fatalf("Apply = %v, want a retryable 429 asking for 30s", err)
	}
	sent := len(nh.Requests())
	now = now.Add(29 * time.Second)
	if err := c.Apply(t.Context(), id, u); !crm.IsHeld(err) || crm.RetryAfter(err) != time.Second {
		t.Fatalf("Apply during the pause = %v, want held for 1s more", err)
	}
	if _, err := c.Lookup(t.Context(), id, phone); !crm.IsHeld(err) {
		t.Fatalf("Lookup during the pause = %v, want held", err)
	}
	if n := len(nh.Requests()); n != sent {
		t.Fatalf("%d requests during the pause", n-sent)
	}
	if err := c.Apply(t.Context(), uuid.New(), u); errors.Is(err, context.Canceled) || crm.IsHeld(err) {
		t.Fatalf("another integration held: %v", err)
	}
	now = now.Add(time.Second)
	if err := c.Apply(t.Context(), id, u); err != nil {
		t.Fatalf("Apply after the pause: %v", err)
	}
	if r, _ := nh.Record(rec); r.Fields["Status"] != "Called" {
		t.Fatalf("record after the pause: %+v", r.Fields)
	}
}

// changingSource is an integration whose settings change while its
// clients are cached.
type changingSource struct {
	mu  sync.Mutex
	now source
}

func (s *changingSource) set(src source) { s.mu.Lock(); s.now = src; s.mu.Unlock() }
func (s *changingSource) Config(ctx context.Context, id uuid.UUID) (config.Integration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now.Config(ctx, id)
}
func (s *changingSource) SecretValue(ctx context.Context, id uuid.UUID, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now.SecretValue(ctx, id, key)
}

// TestClientsApplyNeverDropsAnUpdateOnAStaleNone: an update is queued only
// for an integration with a CRM. When the cache still holds the "no CRM"
// of a moment before (an agent-init looked the caller up just before the
// CRM was set), Apply must not report the update delivered: it reads the
// settings again, and sends it — or, if there really is no CRM any more,
// fails it for good instead of dropping it silently.
func TestClientsApplyNeverDropsAnUpdateOnAStaleNone(t *testing.T) {
	t.Parallel()
	nh := nethunttest.New(t)
	rec := nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": phone})
	src := &changingSource{now: source{cfg: config.Decode(nil)}}
	c := crm.NewClients(src, nh.Client(), breaker.NewSet[any](breaker.Settings{Peer: "crm", IsSuccessful: crm.IsPermanent}))
	id := uuid.New()

	if _, err := c.Lookup(t.Context(), id, phone); !errors.Is(err, crm.ErrNoCRM) {
		t.Fatalf("Lookup without a CRM = %v, want ErrNoCRM", err)
	}
	src.set(netHuntSource(nh))
	u := crm.Update{RecordID: rec, PhoneNumber: phone, Status: "completed", Outcome: "completed"}
	if err := c.Apply(t.Context(), id, u); err != nil {
		t.Fatalf("Apply after the CRM was set: %v", err)
	}
	if r, _ := nh.Record(rec); r.Fields["Status"] != "Called" {
		t.Fatalf("the update never reached the CRM: record %+v", r.Fields)
	}

	src.set(source{cfg: config.Decode(nil)}) // the CRM is removed again
	other := uuid.New()                      // and asked for by an update queued before
	if err := c.Apply(t.Context(), other, u); err == nil || !crm.IsPermanent(err) {
		t.Fatalf("Apply without any CRM = %v, want a permanent failure, not a silent delivery", err)
	}
}

// flakySource is an integration's settings in a store that cannot be read
// for a while (its connections cut): secrets fail while down is set.
type flakySource struct {
	source
	mu   sync.Mutex
	down bool
}

func (s *flakySource) setDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }
func (s *flakySource) SecretValue(ctx context.Context, id uuid.UUID, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", io.ErrUnexpectedEOF
	}
	return s.source.SecretValue(ctx, id, key)
}

// TestClientsSecretUnreadIsNotUnset: a secret that could not be read (the
// database cut for a moment) is not a secret that is not set. Apply must
// fail so that the update is retried, not build a client without the
// secret, fail every update for good for as long as it is cached, and so
// lose them.
func TestClientsSecretUnreadIsNotUnset(t *testing.T) {
	t.Parallel()
	nh := nethunttest.New(t)
	rec := nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": phone})
	src := &flakySource{source: netHuntSource(nh)}
	c := crm.NewClients(src, nh.Client(), breaker.NewSet[any](breaker.Settings{Peer: "crm", IsSuccessful: crm.IsPermanent}))
	id := uuid.New()
	u := crm.Update{RecordID: rec, PhoneNumber: phone, Status: "completed", Outcome: "completed"}

	src.setDown(true)
	if err := c.Apply(t.Context(), id, u); err == nil || crm.IsPermanent(err) {
		t.Fatalf("Apply while the secrets cannot be read = %v, want a failure to retry", err)
	}
	src.setDown(false)
	if err := c.Apply(t.Context(), id, u); err != nil {
		t.Fatalf("Apply once the secrets can be read: %v", err)
	}
	if r, _ := nh.Record(rec); r.Fields["Status"] != "Called" {
		t.Fatalf("the update never reached the CRM: record %+v", r.Fields)
	}
}
