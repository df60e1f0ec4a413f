package service_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/callqueue/callqueue/service/servicetest"
)

// X-Forwarded-* change the URL the service documents for its clients only
// when they come from a configured proxy; from anyone else they are the
// client's word and ignored.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	forwarded := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "calls.example.com",
		"X-Forwarded-For": "198.51.100.7"}
	serversURL := func(in *servicetest.Instance, slug string) string {
		t.Helper()
		status, _, raw := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/"+slug+"/openapi.json", forwarded, nil)
		var doc struct {
			Servers []struct{ URL string } `json:"servers"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || status != http.StatusOK || len(doc.Servers) == 0 {
			t.Fatalf("openapi.json = %d %s (%v)", status, raw, err)
		}
		return doc.Servers[0].URL
	}

	direct := env.Start(servicetest.Options{})
	integ := env.Admin(direct, "owner-proxies").CreateIntegration("Proxies", nil, nil)
	if got := serversURL(direct, integ.Slug); got != direct.URL+"/"+integ.Slug {
		t.Errorf("no trusted proxy: servers %q, want the address asked (%s)", got, direct.URL)
	}

	proxied := env.Start(servicetest.Options{TrustedProxies: "127.0.0.1/32, ::1"})
	if got := serversURL(proxied, integ.Slug); got != "https://calls.example.com/"+integ.Slug {
		t.Errorf("behind a trusted proxy: servers %q, want the forwarded URL", got)
	}
}
