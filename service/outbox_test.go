package service_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestOutboxStopWithADeliveryInFlight: a graceful stop while the CRM is
// still answering an update lets the request finish and records it as
// delivered, so the next process does not send it again.
func TestOutboxStopWithADeliveryInFlight(t *testing.T) {
	t.Parallel()
	p := setupPeers(t, servicetest.Options{}, map[string]any{"max_attempts": 1})
	p.crm.HangUpdates()
	t.Cleanup(p.crm.ReleaseUpdates)
	want := p.driveCalls(t, p.in, 1, 0)
	servicetest.Eventually(t, 20*time.Second, "the update in flight at the CRM", func() bool {
		return len(p.crm.Updates()) == 1 && p.crm.InFlight() == 1
	})

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- p.in.Shutdown(ctx)
	}()
	// The stop waits for the request: the CRM answers while it does.
	servicetest.Eventually(t, 10*time.Second, "the shutdown under way (HTTP closed)", func() bool {
		resp, err := http.Get(p.in.URL + "/healthz")
		if err != nil {
			return true
		}
		_ = resp.Body.Close()
		return false
	})
	p.crm.ReleaseUpdates()
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if byStatus, _, _ := p.outbox(t); byStatus["delivered"] != 1 {
		t.Fatalf("after the graceful stop the outbox is %v: the answered update was not recorded", byStatus)
	}

	next := p.env.Start(servicetest.Options{})
	for range 5 {
		p.pushOutbox(next)
	}
	holdsFor(t, 500*time.Millisecond, "no update sent again by the next process", func() bool {
		p.pushOutbox(next)
		return len(p.crm.Updates()) == 1
	})
	admin := *p.admin
	admin.URL = next.URL
	p.admin = &admin
	p.checkDeliveredOnce(t, want)
}

// failCalls originates n calls on integ (max_attempts 1) and ends each
// after 2 seconds, so each fails and owes its CRM a call.failed update.
func failCalls(t *testing.T, admin *servicetest.Admin, in *servicetest.Instance, integ servicetest.Integration, n int, phonePrefix string) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for i := range n {
		ids = append(ids, originateOn(t, in, integ, map[string]any{"phone_number": fmt.Sprintf("%s%03d", phonePrefix, i)}))
	}
	for _, id := range ids {
		awaitDialled(t, admin, id)
		callEvent(t, in, integ, map[string]any{"eventType": "call_end", "callId": id, "duration": 2})
	}
	for _, id := range ids {
		awaitStatus(t, admin, id, "failed")
	}
	return ids
}

// TestOutboxTwoReplicasCRMSlowerThanTheLease: two processes deliver from
// one outbox while the CRM takes longer than several leases to answer;
// the deliverer renews its leases, the other replica never takes an
// update over, and each update reaches the CRM exactly once.
func TestOutboxTwoReplicasCRMSlowerThanTheLease(t *testing.T) {
	t.Parallel()
	const lease = 600 * time.Millisecond
	opt := servicetest.Options{Workers: workers.Config{OutboxLease: lease}}
	p := setupPeers(t, opt, map[string]any{"max_attempts": 1, "concurrency_limit": 10})
	second := p.env.Start(opt)
	replicas := []*servicetest.Instance{p.in, second}
	p.crm.HangUpdates()
	t.Cleanup(p.crm.ReleaseUpdates)
	want := p.driveCalls(t, p.in, 3, 3)
	servicetest.Eventually(t, 20*time.Second, "every update at the CRM", func() bool {
		for _, in := range replicas {
			in.Workers.Outbox.Kick()
		}
		return p.crm.InFlight() == len(want)
	})

	// Three leases pass while the CRM holds every request. The clock moves
	// half a lease at a time, each step only once every lease has been
	// renewed since the last one, so a lease lapses only if renewal fails.
	for range 6 {
		p.env.Clock.Advance(lease / 2)
		now := p.env.Clock.Now()
		servicetest.Eventually(t, 10*time.Second, "the leases renewed", func() bool {
			var stale int
			if err := p.db.QueryRow(context.Background(), `SELECT count(*) FROM crm_outbox
				WHERE status = 'pending' AND (locked_until IS NULL OR locked_until < $1)`, now.Add(lease)).Scan(&stale); err != nil {
				t.Fatal(err)
			}
			for _, in := range replicas {
				in.Workers.Outbox.Kick() // the other replica looks for updates to take over
			}
			return stale == 0
		})
	}
	if n := len(p.crm.Updates()); n != len(want) {
		t.Fatalf("%d update requests for %d updates while the CRM was slow", n, len(want))
	}

	p.crm.ReleaseUpdates()
	servicetest.Eventually(t, 20*time.Second, "every update delivered", func() bool {
		byStatus, _, _ := p.outbox(t)
		return byStatus["delivered"] == len(want)
	})
	holdsFor(t, 500*time.Millisecond, "no update sent again by either replica", func() bool {
		for _, in := range replicas {
			p.pushOutbox(in)
		}
		return len(p.crm.Updates()) == len(want)
	})
	p.checkDeliveredOnce(t, want)
}

// TestOutboxHangingCRMDoesNotDelayAnotherTenant: tenant A's CRM holds every
// update; A gets at most its share of deliverers, and tenant B's update
// reaches B's CRM within seconds. When A's CRM answers, A's updates are
// delivered once each.
func TestOutboxHangingCRMDoesNotDelayAnotherTenant(t *testing.T) {
	t.Parallel()
	// A's CRM hangs for as long as the test needs, not until the request
	// times out: a timeout would count as a failure, open A's breaker and
	// delay A's deliveries after the release by the breaker's open period.
	p := setupPeers(t, servicetest.Options{CRMTimeout: 2 * time.Minute}, map[string]any{"max_attempts": 1, "concurrency_limit": 30})
	crmB := servicetest.NewFakeCRM(t)
	adminB := p.env.Admin(p.in, "owner-b-"+t.Name())
	tenantB := adminB.CreateIntegration("Tenant B", p.va, map[string]any{"max_attempts": 1})
	adminB.UseWebhookCRM(tenantB, crmB)
	p.crm.HangUpdates()
	t.Cleanup(p.crm.ReleaseUpdates)

	callsA := failCalls(t, p.admin, p.in, p.integ, 20, "+3806710000")
	const perIntegration = 16 // the outbox's bound on one integration's updates in flight
	servicetest.Eventually(t, 10*time.Second, "A's share of deliverers at A's hanging CRM", func() bool {
		return p.crm.InFlight() == perIntegration
	})
	holdsFor(t, 300*time.Millisecond, "A held to its share", func() bool { return p.crm.InFlight() <= perIntegration })

	callB := failCalls(t, adminB, p.in, tenantB, 1, "+3806720000")[0]
	servicetest.Eventually(t, 10*time.Second, "B's update at B's CRM while A's hangs", func() bool {
		ups := crmB.Updates()
		return len(ups) == 1 && ups[0].Status == http.StatusOK && strings.Contains(string(ups[0].Body), callB.String())
	})

	p.crm.ReleaseUpdates()
	servicetest.Eventually(t, 20*time.Second, "A's updates delivered", func() bool {
		byStatus, _, _ := p.outbox(t)
		return byStatus["delivered"] == len(callsA)+1
	})
	for _, id := range callsA {
		ups := crmUpdatesOf(p, id)
		if len(ups) != 1 || ups[0].Status != http.StatusOK {
			t.Errorf("A's call %s: %d update requests, want one delivered", id, len(ups))
		}
	}
}
