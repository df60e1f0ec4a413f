package queue_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/callqueue/callqueue/queue"
)

// runServer starts a NATS server with opts on a random loopback port.
func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	return ns
}

// connect makes one attempt (no retries), so a refusal is an error.
func connect(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.Flush()
}

func assertRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: connected; want the server to refuse", what)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("%s: %v; want an authorization error", what, err)
	}
}

// The embedded server, once it listens, refuses clients without its
// token; the in-process client presents it and JetStream works.
func TestEmbeddedListenerRequiresToken(t *testing.T) {
	t.Parallel()
	if _, err := queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"}); err == nil {
		t.Fatal("the embedded server listened without a token")
	}
	token := queue.NewToken()
	ns, err := queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := ns.ClientURL()
	assertRefused(t, "no token", connect(url))
	assertRefused(t, "wrong token", connect(url, nats.Token(queue.NewToken())))
	if err := connect(url, nats.Token(token)); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if err := connect("", nats.InProcessServer(ns)); err == nil {
		t.Error("an in-process client without the token was let in")
	}
	nc, err := queue.ConnectEmbedded(ns, "test", token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := queue.New(context.Background(), nc, queue.Options{}); err != nil {
		t.Fatalf("streams over the in-process connection: %v", err)
	}
}

// A user and password in NATS_URL sign in with nothing else configured.
func TestURLUserPassword(t *testing.T) {
	t.Parallel()
	ns := runServer(t, &server.Options{Users: []*server.User{{Username: "callqueue", Password: "s3cret-pw"}}})
	addr := ns.Addr().String()
	assertRefused(t, "no password", connect("nats://"+addr))
	assertRefused(t, "wrong password", connect("nats://callqueue:nope@"+addr))
	if err := connect("nats://callqueue:s3cret-pw@" + addr); err != nil {
		t.Fatalf("user:password in the URL: %v", err)
	}
}

// CALLQUEUE_NATS_NKEY signs in as an nkey user.
func TestNkeySeed(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	ns := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	assertRefused(t, "no nkey", connect(ns.ClientURL()))

	opts, err := queue.Auth{NkeySeed: writeFile(t, "user.nk", seed)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(ns.ClientURL(), opts...); err != nil {
		t.Fatalf("with the nkey seed: %v", err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	opts, err = queue.Auth{NkeySeed: writeFile(t, "other.nk", otherSeed)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	assertRefused(t, "an unknown nkey", connect(ns.ClientURL(), opts...))
}

// CALLQUEUE_NATS_CREDS signs in to a server in operator mode with a user
// JWT signed by a trusted account.
func TestCredsFile(t *testing.T) {
	t.Parallel()
	operator, _ := nkeys.CreateOperator()
	operatorPub, _ := operator.PublicKey()
	account, _ := nkeys.CreateAccount()
	accountPub, _ := account.PublicKey()
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()

	opClaims := jwt.NewOperatorClaims(operatorPub)
	opJWT, err := opClaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	accJWT, err := jwt.NewAccountClaims(accountPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	userJWT, err := jwt.NewUserClaims(userPub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(accountPub, accJWT); err != nil {
		t.Fatal(err)
	}
	ns := runServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{decoded}, AccountResolver: resolver})
	assertRefused(t, "no credentials", connect(ns.ClientURL()))
	opts, err := queue.Auth{Creds: writeFile(t, "user.creds", creds)}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(ns.ClientURL(), opts...); err != nil {
		t.Fatalf("with the credentials file: %v", err)
	}
}

// CALLQUEUE_NATS_TLS_CA verifies the server; _CERT and _KEY are the
// client certificate a server that verifies clients asks for.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: filepath.Join(dir, "server.pem"),
		KeyFile: filepath.Join(dir, "server-key.pem"), CaFile: filepath.Join(dir, "ca.pem"), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ns := runServer(t, &server.Options{TLSConfig: tlsConfig, TLSVerify: true, TLS: true, TLSTimeout: 5})
	url := "tls://" + ns.Addr().String()
	caOnly, err := queue.Auth{TLSCA: filepath.Join(dir, "ca.pem")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(url, caOnly...); err == nil {
		t.Error("connected without the client certificate the server requires")
	}
	full, err := queue.Auth{TLSCA: filepath.Join(dir, "ca.pem"), TLSCert: filepath.Join(dir, "client.pem"),
		TLSKey: filepath.Join(dir, "client-key.pem")}.Options()
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(url, full...); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	if err := connect(url); err == nil {
		t.Error("connected without trusting the server's CA")
	}
}

func TestAuthSettingsThatDoNotFit(t *testing.T) {
	t.Parallel()
	for name, a := range map[string]queue.Auth{
		"creds and nkey":   {Creds: "a.creds", NkeySeed: "a.nk"},
		"cert without key": {TLSCert: "c.pem"},
		"key without cert": {TLSKey: "k.pem"},
	} {
		if _, err := a.Options(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newCert writes name.pem and name-key.pem: a CA when parent is nil, else
// a certificate for 127.0.0.1 signed by parent.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
