package servicetest

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// PutConfig sets an integration's config key through the admin API.
func (a *Admin) PutConfig(in Integration, key string, value any) {
	a.t.Helper()
	if code := a.Do("PUT", "/api/integrations/"+in.ID.String()+"/config/"+key, value, nil); code != http.StatusOK {
		a.t.Fatalf("put config %s: %d", key, code)
	}
}

// AddSecret stores an integration's secret through the admin API.
func (a *Admin) AddSecret(in Integration, key, value string) {
	a.t.Helper()
	if code := a.Do("POST", "/api/integrations/"+in.ID.String()+"/secrets", map[string]any{"key": key, "value": value}, nil); code != http.StatusCreated {
		a.t.Fatalf("post secret %s: %d", key, code)
	}
}

// Refresh reads the integration again.
func (a *Admin) Refresh(in Integration) Integration {
	a.t.Helper()
	var out Integration
	if code := a.Do("GET", "/api/integrations/"+in.ID.String(), nil, &out); code != http.StatusOK {
		a.t.Fatalf("get integration: %d", code)
	}
	return out
}

// UseWebhookCRM points the integration's CRM at crm's webhook endpoints.
func (a *Admin) UseWebhookCRM(in Integration, crm *FakeCRM) {
	a.t.Helper()
	a.PutConfig(in, "crm", map[string]any{"kind": "webhook", "lookup_url": crm.LookupURL(), "update_url": crm.UpdateURL()})
	a.AddSecret(in, "CRM_WEBHOOK_SECRET", FakeCRMSecret)
}

// UseElevenLabs makes the integration dial through el over via.
func (a *Admin) UseElevenLabs(in Integration, el *FakeElevenLabs, via string) Integration {
	a.t.Helper()
	a.PutConfig(in, "voice", map[string]any{"provider": "elevenlabs", "base_url": el.URL, "agent_id": "a1",
		"agent_phone_number_id": "p1", "via": via})
	a.AddSecret(in, "ELEVENLABS_API_KEY", FakeElevenLabsKey)
	return a.Refresh(in)
}

// Metric scrapes the instance's /metrics and sums the samples of name whose
// labels include every one of labels (each written `key="value"`).
func (in *Instance) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(rest[:i], l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}
