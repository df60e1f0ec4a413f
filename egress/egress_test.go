package egress_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callqueue/callqueue/egress"
)

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr           string
		strict, opened bool // allowed with AllowPrivate false / true
	}{
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"192.168.1.1", false, true},
		{"fc00::1", false, true},
		{"0.0.0.0", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"fe80::1", false, false},
		{"224.0.0.1", false, false},
		// Contract §1, range by range: shared (CGNAT, Tailscale),
		// benchmarking and reserved addresses are internal...
		{"100.64.0.1", false, true},
		{"100.127.255.254", false, true},
		{"100.63.255.255", true, true}, // just below 100.64.0.0/10
		{"198.18.0.1", false, true},
		{"198.19.255.255", false, true},
		{"198.20.0.1", true, true}, // just above 198.18.0.0/15
		{"240.0.0.1", false, true},
		{"255.255.255.255", false, true},
		{"0.1.2.3", false, true}, // "this network"
		// ...an IPv6 address that carries an IPv4 one is judged by it...
		{"64:ff9b::7f00:1", false, true},     // NAT64 of 127.0.0.1
		{"64:ff9b::a00:5", false, true},      // NAT64 of 10.0.0.5
		{"64:ff9b::808:808", true, true},     // NAT64 of 8.8.8.8
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"2002:7f00:1::1", false, true},      // 6to4 of 127.0.0.1
		{"2002:c0a8:101::", false, true},     // 6to4 of 192.168.1.1
		{"2002:808:808::1", true, true},      // 6to4 of 8.8.8.8
		{"2002:a9fe:a9fe::", false, false},   // 6to4 of 169.254.169.254
		{"::7f00:1", false, true},            // IPv4-compatible 127.0.0.1
		{"::a00:5", false, true},             // IPv4-compatible 10.0.0.5
		{"::ffff:100.64.0.1", false, true},
		{"::ffff:198.18.0.1", false, true},
		{"64:ff9b::6464:64c8", false, false}, // NAT64 of 100.100.100.200
		// ...and the cloud metadata addresses are refused always.
		{"100.100.100.200", false, false},
		{"::ffff:100.100.100.200", false, false},
		{"fd00:ec2::254", false, false},
		{"fd00:ec2::253", false, true}, // private, not metadata
	}
	for _, tt := range tests {
		addr := netip.MustParseAddr(tt.addr)
		if err := (egress.Policy{}).CheckAddr(addr); (err == nil) != tt.strict {
			t.Errorf("strict CheckAddr(%s) = %v, want allowed %v", tt.addr, err, tt.strict)
		}
		if err := (egress.Policy{AllowPrivate: true}).CheckAddr(addr); (err == nil) != tt.opened {
			t.Errorf("private-allowed CheckAddr(%s) = %v, want allowed %v", tt.addr, err, tt.opened)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := egress.Policy{}
	for _, bad := range []string{"http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/", "https://169.254.169.254/latest",
		"http://10.0.0.5/", "ftp://example.com/", "example.com/x", "http://"} {
		if err := strict.CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) passed, want refused", bad)
		}
	}
	for _, good := range []string{"https://api.example.com/v1", "http://crm.example:8080/hook"} {
		if err := strict.CheckURL(good); err != nil {
			t.Errorf("CheckURL(%q) = %v", good, err)
		}
	}
	if err := (egress.Policy{AllowPrivate: true}).CheckURL("http://127.0.0.1:8080/x"); err != nil {
		t.Errorf("CheckURL(loopback) with private egress allowed = %v", err)
	}
	if err := (egress.Policy{AllowPrivate: true}).CheckURL("http://169.254.169.254/"); err == nil {
		t.Error("CheckURL(link-local) passed with private egress allowed; link-local is refused always")
	}
}

// A peer on loopback (what an integration URL pointing inside the
// operator's network looks like) is never reached with the opt-in off, and
// the error a tenant could see names neither the address nor the port.
func TestClientRefusesLoopbackAndLinkLocal(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(peer.Close)
	client := egress.NewClient(egress.Policy{}, 2*time.Second)
	for _, target := range []string{peer.URL + "/internal", "http://localhost:" + peer.URL[strings.LastIndex(peer.URL, ":")+1:],
		"http://169.254.169.254/latest/meta-data/"} {
		resp, err := client.Get(target)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("GET %s succeeded with private egress off", target)
		}
		if !errors.Is(err, egress.ErrRefused) {
			t.Errorf("GET %s: %v, want egress.ErrRefused", target, err)
		}
		shown := egress.Describe(egress.Fail("lookup", err))
		if strings.Contains(shown, "127.0.0.1") || strings.Contains(shown, "169.254") || strings.Contains(shown, peer.URL[7:]) {
			t.Errorf("the shown error %q echoes the target", shown)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback peer was reached %d times", hits.Load())
	}
	opened := egress.NewClient(egress.Policy{AllowPrivate: true}, 2*time.Second)
	resp, err := opened.Get(peer.URL)
	if err != nil {
		t.Fatalf("GET loopback with private egress allowed: %v", err)
	}
	_ = resp.Body.Close()
	if resp, err := opened.Get("http://169.254.169.254/"); !errors.Is(err, egress.ErrRefused) {
		if resp != nil {
			_ = resp.Body.Close()
		}
		t.Errorf("GET link-local with private egress allowed = %v, want refused", err)
	}
}

// A redirect to another host is not followed, even where private egress
// is allowed; one to the same host is.
func TestClientRefusesRedirectToAnotherHost(t *testing.T) {
	t.Parallel()
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { otherHits.Add(1) }))
	t.Cleanup(other.Close)
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/secret", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(peer.Close)
	client := egress.NewClient(egress.Policy{AllowPrivate: true}, 2*time.Second)
	if resp, err := client.Get(peer.URL + "/away"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("redirect to another host was followed")
	} else if !errors.Is(err, egress.ErrRedirectRefused) {
		t.Errorf("redirect error %v, want ErrRedirectRefused", err)
	}
	if otherHits.Load() != 0 {
		t.Errorf("the other host was reached %d times", otherHits.Load())
	}
	resp, err := client.Get(peer.URL + "/here")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("same-host redirect: %v, %v", resp, err)
	}
	_ = resp.Body.Close()
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	client := egress.NewClient(egress.Policy{AllowPrivate: true}, 2*time.Second)
	resp, err := client.Get("http://127.0.0.1:1/") // nothing listens on port 1
	if err == nil {
		_ = resp.Body.Close()
		t.Skip("something listens on port 1")
	}
	if got := egress.Describe(egress.Fail("originate", err)); got != egress.KindConnection {
		t.Errorf("shown error %q, want %q", got, egress.KindConnection)
	}
	if got := egress.Fail("originate", err).Error(); !strings.Contains(got, "127.0.0.1:1") {
		t.Errorf("the logged error %q lacks the transport's words", got)
	}
	if got := (&egress.StatusError{Op: "originate", Status: 502}).Error(); got != "originate: peer answered 502 Bad Gateway" {
		t.Errorf("StatusError = %q", got)
	}
	if got := egress.Describe(fmt.Errorf("crm webhook update: %w", &egress.StatusError{Op: "CRM", Status: 503})); got != "bad status 503" {
		t.Errorf("Describe(wrapped StatusError) = %q", got)
	}
	if got := egress.Describe(fmt.Errorf("answer: %w", egress.ErrMalformed)); got != "malformed answer" {
		t.Errorf("Describe(malformed) = %q", got)
	}
}

// A name is judged at connect time by every address it resolves to: the
// metadata addresses and every internal range are refused before any
// connection is made, even where private egress is allowed for the
// metadata ones. Only the loopback listener is ever dialled.
func TestDialerRefusesNamesResolvingToRefusedRanges(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(peer.Close)
	port := peer.URL[strings.LastIndex(peer.URL, ":")+1:]
	resolves := map[string][]string{
		"metadata-v4.test":      {"169.254.169.254"},
		"metadata-v6.test":      {"fd00:ec2::254"},
		"metadata-alibaba.test": {"100.100.100.200"},
		"metadata-nat64.test":   {"64:ff9b::6464:64c8"},
		"shared.test":           {"100.64.1.1"},
		"benchmarking.test":     {"198.18.0.9"},
		"reserved.test":         {"240.1.2.3"},
		"sixtofour.test":        {"2002:7f00:1::1"},
		"compatible.test":       {"::7f00:1"},
		"mixed.test":            {"127.0.0.1", "100.100.100.200"}, // one refused address refuses the name
		"loopback.test":         {"127.0.0.1"},
	}
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, a := range resolves[host] {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
	alwaysRefused := []string{"metadata-v4.test", "metadata-v6.test", "metadata-alibaba.test", "metadata-nat64.test", "mixed.test"}
	for _, allowPrivate := range []bool{false, true} {
		dialer := egress.NewDialerResolving(egress.Policy{AllowPrivate: allowPrivate}, lookup)
		for name := range resolves {
			conn, err := dialer.DialContext(context.Background(), "tcp", net.JoinHostPort(name, port))
			if err == nil {
				_ = conn.Close()
			}
			switch {
			case !allowPrivate || slices.Contains(alwaysRefused, name):
				if !errors.Is(err, egress.ErrRefused) {
					t.Errorf("allowPrivate=%v: dial %s = %v, want refused by the policy", allowPrivate, name, err)
				}
			case name == "loopback.test":
				if err != nil {
					t.Errorf("private egress allowed: dial %s = %v, want connected", name, err)
				}
			case !errors.Is(err, egress.ErrWouldLeave):
				t.Errorf("private egress allowed: dial %s = %v, want let through by the policy", name, err)
			}
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback listener answered %d HTTP requests; only connections were expected", hits.Load())
	}
}
