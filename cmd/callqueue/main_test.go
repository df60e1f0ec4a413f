package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// These tests set environment variables (the commands read their
// configuration there), so none of them runs in parallel.

// mainArgsEnv makes the test binary run main with these arguments
// (separated by newlines), so that a test can see the real exit status.
const mainArgsEnv = "CALLQUEUE_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		os.Args = append([]string{"callqueue"}, strings.Split(args, "\n")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// callqueue runs the command in-process and returns its stdout and stderr.
func callqueue(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// storeWithKey opens the database at url sealing with key.
func storeWithKey(t *testing.T, url string, key []byte) *store.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sealer, err := store.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return store.New(pool, sealer)
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestTokenCommands(t *testing.T) {
	url := storetest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	st := storeWithKey(t, url, storetest.SecretKey)
	ctx := context.Background()

	if _, _, err := callqueue(t, "token", "create", "--name", "ci"); err == nil || !strings.Contains(err.Error(), "--owner") {
		t.Fatalf("token create without --owner: %v", err)
	}
	out, _, err := callqueue(t, "token", "create", "--owner", "owner-a", "--name", "ci")
	if err != nil {
		t.Fatal(err)
	}
	plain := lastLine(out)
	if bearer, err := st.Authenticate(ctx, plain); err != nil || bearer.Owner != "owner-a" {
		t.Fatalf("the last line of %q does not authenticate: %+v, %v", out, bearer, err)
	}
	tokens, err := st.ListTokens(ctx, "owner-a")
	if err != nil || len(tokens) != 1 || tokens[0].Name != "ci" {
		t.Fatalf("tokens = %+v, %v", tokens, err)
	}
	id := tokens[0].ID.String()

	out, _, err = callqueue(t, "token", "list", "--owner", "owner-a")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "active") || strings.Contains(out, plain) {
		t.Fatalf("token list = %q, %v", out, err)
	}
	if out, _, err = callqueue(t, "token", "revoke", id); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke = %q, %v", out, err)
	}
	if _, err := st.Authenticate(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revoked token authenticates: %v", err)
	}
	if out, _, _ = callqueue(t, "token", "list"); !strings.Contains(out, id+"\towner-a\tci\trevoked") {
		t.Errorf("token list after revoke = %q", out)
	}
	if _, _, err := callqueue(t, "token", "revoke", id); err == nil || !strings.Contains(err.Error(), "no live token") {
		t.Errorf("revoking twice: %v", err)
	}
	if out, _, err := callqueue(t, "token", "--help"); err != nil || !strings.Contains(out, "Usage") {
		t.Errorf("token --help = %q, %v", out, err)
	}

	// Both changes are in the owner's audit log, made by the command line.
	entries, _, err := st.OwnerAuditLog(ctx, "owner-a", uuid.Nil, 10, 0)
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit log = %+v, %v", entries, err)
	}
	for i, action := range []string{"revoke", "create"} {
		if e := entries[i]; e.Actor != store.ActorCLI || e.Action != action || e.Resource != "token" || *e.ResourceID != id {
			t.Errorf("entry %d = %+v", i, e)
		}
	}
}

func TestSecretsRotateKey(t *testing.T) {
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	t.Setenv("DATABASE_URL", env.DatabaseURL)
	t.Setenv("CALLQUEUE_NEW_SECRET_KEY", "")
	ctx := context.Background()

	// The service's values are sealed with an old key; the rotation moves
	// them to the key that servicetest's processes run with.
	oldKey := randomKey(t)
	old := storeWithKey(t, env.DatabaseURL, oldKey)
	in, err := old.CreateIntegration(ctx, "owner-a", "test", store.IntegrationFields{Name: ptrTo("Rotated")})
	if err != nil {
		t.Fatal(err)
	}
	voice, err := json.Marshal(map[string]any{"provider": "va", "base_url": va.URL, "sip_id": "sip-1", "assistant_id": "asst-1"})
	if err != nil {
		t.Fatal(err)
	}
	if voice, err = config.Normalize(config.KeyVoice, voice); err != nil {
		t.Fatal(err)
	}
	if err := old.PutConfig(ctx, "test", in.ID, config.KeyVoice, voice); err != nil {
		t.Fatal(err)
	}
	if _, err := old.PutSecret(ctx, "test", in.ID, store.KindSecret, "VA_AUTH_TOKEN", servicetest.FakeVAToken, false); err != nil {
		t.Fatal(err)
	}
	if _, err := old.PutSecret(ctx, "test", in.ID, store.KindCredential, "NETHUNT_API_KEY", "nethunt-value-0001", false); err != nil {
		t.Fatal(err)
	}

	// --old defaults to CALLQUEUE_SECRET_KEY; keys may be hex or base64.
	t.Setenv("CALLQUEUE_SECRET_KEY", hex.EncodeToString(oldKey))
	newKey := base64.StdEncoding.EncodeToString(storetest.SecretKey)
	out, _, err := callqueue(t, "secrets", "rotate-key", "--new", newKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "re-encrypted 3 values") || strings.Contains(out, newKey) {
		t.Errorf("rotate-key said %q", out)
	}
	if _, err := old.IntegrationByID(ctx, in.ID); !errors.Is(err, store.ErrDecrypt) {
		t.Errorf("the old key still opens the webhook token: %v", err)
	}
	if _, err := old.SecretValue(ctx, in.ID, "NETHUNT_API_KEY"); !errors.Is(err, store.ErrDecrypt) {
		t.Errorf("the old key still opens a credential: %v", err)
	}
	if v, err := env.Store.SecretValue(ctx, in.ID, "NETHUNT_API_KEY"); err != nil || v != "nethunt-value-0001" {
		t.Errorf("credential under the new key = %q, %v", v, err)
	}

	// A process on the new key takes the old webhook token, and dials with
	// VA_AUTH_TOKEN (the fake VA refuses any other).
	inst := env.Start(servicetest.Options{})
	if code := servicetest.Webhook(t, inst, in, "call-originate", map[string]any{"phone_number": "+380991112233"}, nil); code != http.StatusAccepted {
		t.Fatalf("call-originate with the webhook token after rotation: %d", code)
	}
	if o := va.Next(t, 10*time.Second); o.PhoneNumber != "+380991112233" {
		t.Errorf("the VA got %+v", o)
	}
}

func TestSecretsRotateKeyAllOrNothing(t *testing.T) {
	url := storetest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("CALLQUEUE_SECRET_KEY", "")
	t.Setenv("CALLQUEUE_NEW_SECRET_KEY", "")
	ctx := context.Background()
	st := storeWithKey(t, url, storetest.SecretKey)
	in, err := st.CreateIntegration(ctx, "owner-a", "test", store.IntegrationFields{Name: ptrTo("Good")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSecret(ctx, "test", in.ID, store.KindSecret, "GOOD", "good-value-0001", false); err != nil {
		t.Fatal(err)
	}
	// One value was sealed with some other key.
	if _, err := storeWithKey(t, url, randomKey(t)).PutSecret(ctx, "test", in.ID, store.KindSecret, "STRAY", "stray-value-0002", false); err != nil {
		t.Fatal(err)
	}
	var before string
	if err := st.Pool().QueryRow(ctx, `SELECT string_agg(encode(value_enc, 'hex'), ',' ORDER BY key) FROM secrets`).Scan(&before); err != nil {
		t.Fatal(err)
	}

	oldHex, newHex := hex.EncodeToString(storetest.SecretKey), hex.EncodeToString(randomKey(t))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainArgsEnv+"=secrets\nrotate-key\n--old\n"+oldHex+"\n--new\n"+newHex)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("rotate-key with an undecryptable value: %v (stderr %q)", err, stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "1 of 3 encrypted values do not decrypt") || !strings.Contains(msg, "secret STRAY") ||
		!strings.Contains(msg, "nothing was changed") {
		t.Errorf("stderr %q does not say which values failed", msg)
	}
	for _, leak := range []string{oldHex, newHex, "stray-value", "good-value"} {
		if strings.Contains(msg+stdout.String(), leak) {
			t.Errorf("the output shows %q", leak)
		}
	}
	var after string
	if err := st.Pool().QueryRow(ctx, `SELECT string_agg(encode(value_enc, 'hex'), ',' ORDER BY key) FROM secrets`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("a failed rotation changed stored values")
	}
	if v, err := st.SecretValue(ctx, in.ID, "GOOD"); err != nil || v != "good-value-0001" {
		t.Errorf("GOOD after the failed rotation = %q, %v", v, err)
	}
}

func TestSecretsRotateKeyArguments(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://nowhere.invalid/db") // never reached
	t.Setenv("CALLQUEUE_SECRET_KEY", "")
	t.Setenv("CALLQUEUE_NEW_SECRET_KEY", "")
	good := hex.EncodeToString(randomKey(t))
	tests := []struct {
		args []string
		want string // in the error; "" for success
	}{
		{[]string{"secrets", "--help"}, ""},
		{[]string{"secrets", "rotate-key", "--help"}, ""},
		{[]string{"secrets"}, "see callqueue --help"},
		{[]string{"secrets", "shred"}, `unknown secrets command "shred"`},
		{[]string{"secrets", "rotate-key", "--new", good}, "--old is required (or set CALLQUEUE_SECRET_KEY)"},
		{[]string{"secrets", "rotate-key", "--old", good}, "--new is required (or set CALLQUEUE_NEW_SECRET_KEY)"},
		{[]string{"secrets", "rotate-key", "--old", good, "--new", "c2hvcnQ="}, "--new: secret key must be 32 bytes"},
		{[]string{"secrets", "rotate-key", "--old", "not-a-key", "--new", good}, "--old: secret key must be 32 bytes"},
		{[]string{"secrets", "rotate-key", "--old", good, "--new", good, "extra"}, "takes no arguments"},
	}
	for _, tt := range tests {
		out, errOut, err := callqueue(t, tt.args...)
		switch {
		case tt.want == "" && (err != nil || !strings.Contains(out+errOut, "rotate-key")):
			t.Errorf("%v = %v; stdout %q", tt.args, err, out)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v = %v, want an error saying %q", tt.args, err, tt.want)
		}
		if strings.Contains(out+errOut+errString(err), good) {
			t.Errorf("%v shows the key", tt.args)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func ptrTo[T any](v T) *T { return &v }
