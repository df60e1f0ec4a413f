package service_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
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
