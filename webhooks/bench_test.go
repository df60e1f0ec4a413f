package webhooks_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// BenchmarkWebhooks is the cost of one webhook in the process that
// serves it, from the request to its answer: the service's whole handler
// (middleware, routing, authentication, decoding, validation, the
// JetStream publish, metrics) called in-process with a real Postgres and a
// real JetStream server, against a bare handler that reads the body and
// answers as the webhook does. Run them together, so that the ratios come
// from one run:
//
//	go test -run '^$' -bench Webhooks -benchmem ./webhooks/
//
// Requests run in parallel, as under load, so call events share their
// JetStream messages (queue.Batcher) as they do in production.
func BenchmarkWebhooks(b *testing.B) {
	env := servicetest.New(b)
	// The webhooks role alone, as deployed for intake: no workers take
	// the stored messages meanwhile. The api role sets the integration up.
	in := env.Start(servicetest.Options{Role: "webhooks"})
	admin := env.Admin(env.Start(servicetest.Options{Role: "api"}), "owner-"+uuid.NewString())
	integ := admin.CreateIntegration("Bench "+uuid.NewString()[:8], servicetest.NewFakeVA(b), nil)
	const phones = 500
	for i := range phones { // warmed as dialling does: agent-init answers from the cache
		in.Callers.Warm(b.Context(), integ.ID, fmt.Sprintf("+38097%07d", i), uuid.New(), json.RawMessage(`{"lead":"webinar"}`))
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"success":true}` + "\n"))
	})
	var seq atomic.Int64
	for _, c := range []struct {
		name    string
		handler http.Handler
		path    string
		body    func(n int64) []byte
		status  int
	}{
		{"bare", bare, "/", func(n int64) []byte {
			return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42,"conversation_id":"conv-%d"}`, n, n)
		}, http.StatusAccepted},
		{"call-events", in.Handler(), "/" + integ.Slug + "/webhook/call-events", func(n int64) []byte {
			return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42,"conversation_id":"conv-%d"}`, n, n)
		}, http.StatusAccepted},
		{"call-originate", in.Handler(), "/" + integ.Slug + "/webhook/call-originate", func(n int64) []byte {
			return fmt.Appendf(nil, `{"phone_number":"+38050%07d","record_id":"lead-%d","dynamic_variables":{"name":"Olena"}}`, n%10000000, n)
		}, http.StatusAccepted},
		{"agent-init", in.Handler(), "/" + integ.Slug + "/webhook/agent-init", func(n int64) []byte {
			return fmt.Appendf(nil, `{"phone_number":"+38097%07d"}`, n%phones)
		}, http.StatusOK},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{}
				for pb.Next() {
					n := seq.Add(1)
					r, err := http.NewRequest(http.MethodPost, c.path, bytes.NewReader(c.body(n)))
					if err != nil {
						b.Error(err)
						return
					}
					r.RemoteAddr = "127.0.0.1:40000"
					r.Header = http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {integ.WebhookToken}}
					w.reset()
					c.handler.ServeHTTP(w, r)
					if w.status != c.status {
						b.Errorf("%s answered %d, want %d", c.name, w.status, c.status)
						return
					}
				}
			})
		})
	}
}

// discardWriter is the least a ResponseWriter can be: the answer's status
// is kept, its bytes dropped.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) reset() { w.header, w.status = http.Header{}, 0 }

func (w *discardWriter) Header() http.Header { return w.header }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
