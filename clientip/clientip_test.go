package clientip_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/callqueue/callqueue/clientip"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	proxies, err := clientip.ParseProxies("10.0.0.0/8, 192.168.1.7 fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		peer   string
		header http.Header
		tls    bool
		want   clientip.Origin
	}{
		{name: "direct client", peer: "203.0.113.5:4711",
			want: clientip.Origin{IP: netip.MustParseAddr("203.0.113.5"), Scheme: "http", Host: "calls.test"}},
		{name: "headers from an untrusted client are ignored", peer: "203.0.113.5:4711",
			header: http.Header{"X-Forwarded-For": {"198.51.100.1"}, "X-Real-Ip": {"198.51.100.2"},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}},
			want: clientip.Origin{IP: netip.MustParseAddr("203.0.113.5"), Scheme: "http", Host: "calls.test"}},
		{name: "trusted proxy", peer: "10.1.2.3:80",
			header: http.Header{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"calls.example.com"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("198.51.100.1"), Scheme: "https", Host: "calls.example.com"}},
		{name: "a client-written entry left of the proxy's is not believed", peer: "10.1.2.3:80",
			header: http.Header{"X-Forwarded-For": {"1.2.3.4, 198.51.100.1"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("198.51.100.1"), Scheme: "http", Host: "calls.test"}},
		{name: "a chain of trusted proxies over several headers", peer: "10.1.2.3:80",
			header: http.Header{"X-Forwarded-For": {"1.2.3.4, 198.51.100.9", "192.168.1.7, 10.9.9.9"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("198.51.100.9"), Scheme: "http", Host: "calls.test"}},
		{name: "garbage stops at the last trusted hop", peer: "10.1.2.3:80",
			header: http.Header{"X-Forwarded-For": {"not-an-ip, 10.4.4.4"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("10.4.4.4"), Scheme: "http", Host: "calls.test"}},
		{name: "entries with ports", peer: "[fd00::1]:80",
			header: http.Header{"X-Forwarded-For": {"[2001:db8::7]:5555"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("2001:db8::7"), Scheme: "http", Host: "calls.test"}},
		{name: "X-Real-IP from a trusted proxy", peer: "192.168.1.7:80",
			header: http.Header{"X-Real-Ip": {"198.51.100.3"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("198.51.100.3"), Scheme: "http", Host: "calls.test"}},
		{name: "a single trusted address trusts no neighbour", peer: "192.168.1.8:80",
			header: http.Header{"X-Real-Ip": {"198.51.100.3"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("192.168.1.8"), Scheme: "http", Host: "calls.test"}},
		{name: "an unfit forwarded host is ignored", peer: "10.1.2.3:80",
			header: http.Header{"X-Forwarded-Host": {"evil.example/path?x"}, "X-Forwarded-Proto": {"gopher"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("10.1.2.3"), Scheme: "http", Host: "calls.test"}},
		{name: "TLS without a proxy", peer: "203.0.113.5:4711", tls: true,
			want: clientip.Origin{IP: netip.MustParseAddr("203.0.113.5"), Scheme: "https", Host: "calls.test"}},
		{name: "IPv4-mapped peer", peer: "[::ffff:10.1.2.3]:80",
			header: http.Header{"X-Forwarded-For": {"198.51.100.1"}},
			want:   clientip.Origin{IP: netip.MustParseAddr("198.51.100.1"), Scheme: "http", Host: "calls.test"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "http://calls.test/x", nil)
			r.RemoteAddr = c.peer
			for k, v := range c.header {
				r.Header[http.CanonicalHeaderKey(k)] = v
			}
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := proxies.Resolve(r); got != c.want {
				t.Errorf("Resolve = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParseProxiesRefusesNonsense(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1/8/8"} {
		if _, err := clientip.ParseProxies(bad); err == nil {
			t.Errorf("ParseProxies(%q) accepted it", bad)
		}
	}
	p, err := clientip.ParseProxies("")
	if err != nil || p.Trusts(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("an empty list must trust no one (%v)", err)
	}
}

// The middleware resolves once; handlers read the result, and a request
// that bypassed it trusts no proxy.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	proxies, err := clientip.ParseProxies("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	var seen clientip.Origin
	h := proxies.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = clientip.FromRequest(r)
	}))
	r := httptest.NewRequest("GET", "http://calls.test/", nil)
	r.RemoteAddr = "127.0.0.1:999"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	r.Header.Set("X-Forwarded-Proto", "https")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen.IP != netip.MustParseAddr("198.51.100.1") || seen.BaseURL() != "https://calls.test" {
		t.Errorf("through the middleware: %+v", seen)
	}
	if ip := clientip.ClientIP(r); ip != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("without the middleware: %v, want the peer", ip)
	}
}
