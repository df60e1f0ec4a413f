package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/callqueue/callqueue/service/servicetest"
)

// With CALLQUEUE_ALLOW_PRIVATE_EGRESS off, integration-supplied URLs that
// point inside the operator's network are refused when configured (the
// host is literal) and, for a value already stored, at the request: the
// peer on loopback is never reached, and what the tenant reads back names
// neither its address nor its port.
func TestEgressRefusesInternalTargets(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{StrictEgress: true})
	admin := env.Admin(in, "owner-egress")
	va := servicetest.NewFakeVA(t)
	integ := admin.CreateIntegration("Egress", nil, nil)
	path := "/api/integrations/" + integ.ID.String()

	for _, tt := range []struct {
		key   string
		value map[string]any
	}{
		{"voice", map[string]any{"provider": "va", "base_url": va.URL, "sip_id": "sip-1"}},
		{"voice", map[string]any{"provider": "va", "base_url": "http://169.254.169.254/latest", "sip_id": "sip-1"}},
		{"crm", map[string]any{"kind": "webhook", "update_url": "http://10.0.0.7/update"}},
		{"analysis", map[string]any{"base_url": "http://[::1]:11434/v1", "model": "m"}},
	} {
		var answer struct {
			Error struct{ Code, Field string }
		}
		if code := admin.Do("PUT", path+"/config/"+tt.key, tt.value, &answer); code != http.StatusUnprocessableEntity ||
			answer.Error.Field == "" {
			t.Errorf("PUT config/%s %v = %d %+v, want 422 naming the URL field", tt.key, tt.value, code, answer)
		}
	}
	var answer struct{ Error struct{ Field string } }
	if code := admin.Do("POST", path+"/sync-handlers", map[string]any{"integrationName": "x", "baseUrl": va.URL}, &answer); code != http.StatusUnprocessableEntity || answer.Error.Field != "baseUrl" {
		t.Errorf("sync-handlers from loopback = %d %+v, want 422 on baseUrl", code, answer)
	}

	// A value stored before the policy (or by hand) is refused at the dial.
	if _, err := env.Store.Pool().Exec(context.Background(), `INSERT INTO integration_config (integration_id, key, value)
		VALUES ($1, 'voice', jsonb_build_object('provider', 'va', 'base_url', $2::text, 'sip_id', 'sip-1'))`, integ.ID, va.URL); err != nil {
		t.Fatal(err)
	}
	admin.AddSecret(integ, "VA_AUTH_TOKEN", servicetest.FakeVAToken)
	integ = admin.Refresh(integ)
	id := originateOn(t, in, integ, map[string]any{"phone_number": "+380501112233"})
	c := awaitCall(t, admin, id, "the refused dial", func(c peerCall) bool { return c.Status == "retry_scheduled" || c.Status == "failed" })
	if n := len(va.Requests()); n != 0 {
		t.Fatalf("the loopback VA was reached %d times", n)
	}
	_, _, raw := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/api/calls/"+id.String(),
		map[string]string{"Authorization": "Bearer " + admin.Token}, nil)
	port := va.URL[strings.LastIndex(va.URL, ":")+1:]
	if strings.Contains(string(raw), "127.0.0.1") || strings.Contains(string(raw), ":"+port) {
		t.Errorf("the call's history echoes the target: %s", raw)
	}
	if !strings.Contains(string(raw), "egress policy") {
		t.Errorf("the call's history does not say why the dial failed (%s): %s", c.Status, raw)
	}
}

// A redirect to another host is not followed (here with private egress
// allowed, as the fakes live on loopback).
func TestSyncHandlersRefusesRedirectToAnotherHost(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-redirect")
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		_, _ = w.Write([]byte(`{"openapi": "3.1.0", "info": {"title": "metadata", "version": "1"}, "paths": {}}`))
	}))
	t.Cleanup(inside.Close)
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/latest/meta-data", http.StatusFound)
	}))
	t.Cleanup(outside.Close)
	integ := admin.CreateIntegration("Redirect", nil, nil)
	var answer struct {
		Error struct{ Code, Message string }
	}
	code := admin.Do("POST", "/api/integrations/"+integ.ID.String()+"/sync-handlers",
		map[string]any{"integrationName": "x", "baseUrl": outside.URL}, &answer)
	if code != http.StatusBadGateway {
		t.Fatalf("sync-handlers through a redirect to another host = %d %+v, want 502", code, answer)
	}
	if reached.Load() != 0 {
		t.Fatalf("the redirect target was reached %d times", reached.Load())
	}
	if strings.Contains(answer.Error.Message, inside.URL[7:]) {
		t.Errorf("the answer names the redirect target: %q", answer.Error.Message)
	}
}
