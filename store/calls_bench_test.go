package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// BenchmarkInsertCalls is the intake worker's transaction for one batch of
// call-originates, half of them with an idempotency key: the part of the
// delay between a 202 and a readable call that Postgres decides.
func BenchmarkInsertCalls(b *testing.B) {
	for _, size := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s, _ := storetest.NewStore(b)
			name := "bench"
			in, err := s.CreateIntegration(b.Context(), "bench", "bench", store.IntegrationFields{Name: &name})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				calls := make([]store.NewCall, size)
				for j := range calls {
					calls[j] = store.NewCall{ID: uuid.New(), IntegrationID: in.ID, PhoneNumber: fmt.Sprintf("+38050%07d", (i*size+j)%10000000),
						ReceivedAt: now, TraceID: "trace"}
					if j%2 == 0 {
						calls[j].IdempotencyKeys = []string{"idem:" + calls[j].ID.String()}
					}
				}
				if _, err := s.InsertCalls(b.Context(), calls, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/call")
		})
	}
}
