package service_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestMetricsExemplarsLeadToTheCall: a scraper that asks for OpenMetrics
// gets it, with the dialled call's id as the exemplar of the dial counter
// and the queue-wait histogram, so a spike on a dashboard leads to a call.
// A plain scrape stays in the classic text format, without exemplars.
func TestMetricsExemplarsLeadToTheCall(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-"+t.Name())
	integ := admin.CreateIntegration("Exemplars", va, nil)
	var call struct {
		CallID uuid.UUID `json:"callId"`
	}
	servicetest.Webhook(t, in, integ, "call-originate", map[string]any{"phone_number": "+380991234567"}, &call)
	va.Next(t, 10*time.Second)

	scrape := func(accept string) (contentType, body string) {
		req, err := http.NewRequest("GET", in.URL+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Get("Content-Type"), string(b)
	}
	id := regexp.QuoteMeta(call.CallID.String())
	// Exemplar labels come in any order.
	exemplar := ` # \{[^}]*\bcall_id="` + id + `"`
	wants := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^callqueue_dials_total\{result="accepted"\} 1(\.0)?` + exemplar),
		regexp.MustCompile(`(?m)^callqueue_queue_wait_seconds_bucket\{le="[^"]+"\} 1(\.0)?` + exemplar),
		regexp.MustCompile(`(?m)^callqueue_dial_duration_seconds_bucket\{provider="va",result="accepted",le="[^"]+"\} 1(\.0)?` + exemplar),
	}
	// A scrape is no snapshot: the registry collects each metric family on
	// its own goroutine, so one scrape can hold the dial's count and not yet
	// its duration. Scrape until every exemplar is there.
	var body string
	var missing []*regexp.Regexp
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ct, b := scrape("application/openmetrics-text; version=1.0.0")
		if !strings.HasPrefix(ct, "application/openmetrics-text") {
			t.Fatalf("Content-Type %q when OpenMetrics was asked for", ct)
		}
		body, missing = b, nil
		for _, want := range wants {
			if !want.MatchString(b) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range missing {
		t.Errorf("no exemplar of the call matching %s in:\n%s", want, grep(body, "callqueue_dial", "callqueue_queue_wait"))
	}
	ct, plain := scrape("")
	if !strings.HasPrefix(ct, "text/plain") || strings.Contains(plain, "# {") {
		t.Errorf("a plain scrape got %q with exemplars: %v", ct, strings.Contains(plain, "# {"))
	}
}

// grep returns body's lines that start with one of prefixes.
func grep(body string, prefixes ...string) string {
	var b strings.Builder
	for line := range strings.Lines(body) {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				b.WriteString(line)
				break
			}
		}
	}
	return b.String()
}
