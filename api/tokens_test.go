package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/store"
)

func listTokens(t testing.TB, c client) map[string]store.AccessToken {
	t.Helper()
	r := c.do(t, "GET", "/api/tokens", nil).expect(t, http.StatusOK)
	out := map[string]store.AccessToken{}
	for _, tok := range decodeAs[[]store.AccessToken](t, r) {
		out[tok.Name] = tok
	}
	return out
}

func TestTokensAPI(t *testing.T) {
	t.Parallel()
	w := setup(t)
	ctx := context.Background()
	ci, ciPlain, err := w.env.Store.CreateToken(ctx, ownerA, store.ActorCLI, "ci")
	if err != nil {
		t.Fatal(err)
	}
	other, otherPlain, err := w.env.Store.CreateToken(ctx, ownerB, store.ActorCLI, "b-ci")
	if err != nil {
		t.Fatal(err)
	}
	asCI := client{base: w.inst.URL, token: ciPlain}

	// Only the owner's own tokens, and only what identifies them.
	r := w.a.do(t, "GET", "/api/tokens", nil).expect(t, http.StatusOK)
	for _, raw := range decodeAs[[]map[string]any](t, r) {
		var keys []string
		for k := range raw {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"createdAt", "id", "lastUsedAt", "name", "ownerId", "revokedAt"}; !slices.Equal(keys, want) {
			t.Errorf("token JSON keys = %v, want %v", keys, want)
		}
	}
	for _, secret := range []string{w.a.token, ciPlain, otherPlain, other.ID.String(), "hash"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("GET /api/tokens shows %q: %s", secret, r.body)
		}
	}
	mine := listTokens(t, w.a)
	if len(mine) != 2 || mine["ci"].ID != ci.ID || mine["test"].OwnerID != ownerA {
		t.Fatalf("A's tokens = %+v", mine)
	}
	// Authentication records the use: the token A calls with is used, ci not yet.
	if mine["test"].LastUsedAt == nil || mine["ci"].LastUsedAt != nil || mine["ci"].RevokedAt != nil {
		t.Errorf("before ci is used: test %+v, ci %+v", mine["test"], mine["ci"])
	}
	asCI.do(t, "GET", "/api/integrations", nil).expect(t, http.StatusOK)
	if used := listTokens(t, w.a)["ci"].LastUsedAt; used == nil || used.Before(ci.CreatedAt) {
		t.Errorf("ci's lastUsedAt after use = %v", used)
	}

	// Another owner's token is a 404 and keeps working.
	expectError(t, w.a.do(t, "DELETE", "/api/tokens/"+other.ID.String(), nil), http.StatusNotFound)
	client{base: w.inst.URL, token: otherPlain}.do(t, "GET", "/api/tokens", nil).expect(t, http.StatusOK)
	if theirs := listTokens(t, w.b); theirs["b-ci"].RevokedAt != nil || theirs["ci"].ID == ci.ID {
		t.Errorf("B's tokens = %+v", theirs)
	}

	// Revoking: the token stops working at once, shows as revoked, and a
	// second revoke is a 404.
	r = w.a.do(t, "DELETE", "/api/tokens/"+ci.ID.String(), nil).expect(t, http.StatusOK)
	if got := decodeAs[map[string]any](t, r); len(got) != 1 || got["success"] != true {
		t.Errorf("DELETE answered %s", r.body)
	}
	expectError(t, asCI.do(t, "GET", "/api/integrations", nil), http.StatusUnauthorized)
	if revoked := listTokens(t, w.a)["ci"]; revoked.RevokedAt == nil {
		t.Errorf("ci after revoke = %+v", revoked)
	}
	expectError(t, w.a.do(t, "DELETE", "/api/tokens/"+ci.ID.String(), nil), http.StatusNotFound)

	// The owner's audit log names who revoked what.
	entries, _ := auditPage(t, w.a, "/api/audit-logs")
	if len(entries) == 0 || summary(entries[0]) != "owner-a revoke token" || *entries[0].ResourceID != ci.ID.String() {
		t.Errorf("newest entry = %+v", entries)
	}

	// A token may revoke itself; it is then refused like any other.
	self := listTokens(t, w.a)["test"]
	w.a.do(t, "DELETE", "/api/tokens/"+self.ID.String(), nil).expect(t, http.StatusOK)
	expectError(t, w.a.do(t, "GET", "/api/tokens", nil), http.StatusUnauthorized)
}
