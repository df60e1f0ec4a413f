// Command callqueue runs the call-queue service and its admin tasks:
//
//	callqueue serve [--role all|webhooks|workers|api] [--no-migrate]
//	callqueue migrate up|down [N]|status
//	callqueue token create --owner OWNER [--name NAME]
//	callqueue token list [--owner OWNER]
//	callqueue token revoke ID
//	callqueue secrets rotate-key --new KEY [--old KEY]
//	callqueue dlq list|replay [flags]
//	callqueue version
//
// Configuration comes from the environment (see docs/configuration.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/migrations"
	"github.com/callqueue/callqueue/service"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "none"
)

const usage = `callqueue — event-driven call-queue workers for AI voice agents

Usage:
  callqueue serve [--role all|webhooks|workers|api] [--no-migrate]
  callqueue migrate up|down [N]|status
  callqueue token create --owner OWNER [--name NAME]
  callqueue token list [--owner OWNER]
  callqueue token revoke ID
  callqueue secrets rotate-key --new KEY [--old KEY]
  callqueue dlq list [--stream S] [--integration ID] [--after N] [--limit N] [--json]
  callqueue dlq replay (--seq N | --all) [--stream S] [--integration ID]
  callqueue version

Environment: DATABASE_URL, NATS_URL, CALLQUEUE_DATA_DIR, CALLQUEUE_HTTP_ADDR,
CALLQUEUE_SECRET_KEY, CALLQUEUE_LOG_LEVEL, CALLQUEUE_LOG_FORMAT, CALLQUEUE_TIMEZONE,
CALLQUEUE_NATS_LISTEN, CALLQUEUE_NATS_SYNC, CALLQUEUE_NATS_REPLICAS, CALLQUEUE_NATS_TOKEN,
CALLQUEUE_NATS_CREDS, CALLQUEUE_NATS_NKEY, CALLQUEUE_NATS_TLS_CA, CALLQUEUE_NATS_TLS_CERT,
CALLQUEUE_NATS_TLS_KEY, CALLQUEUE_TRUSTED_PROXIES, CALLQUEUE_RATE_* (see docs/configuration.md).
Run "callqueue COMMAND --help" for a command's flags.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "callqueue:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("see callqueue --help")

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "serve":
		return serve(args[1:], stderr)
	case "migrate":
		return migrate(args[1:], stdout, stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "secrets":
		return secrets(args[1:], stdout, stderr)
	case "dlq":
		return dlq(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "callqueue %s (commit %s, %s)\n", version, commit, runtime.Version())
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func newLogger(cfg config.Service, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("service", "callqueue").Logger()
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", service.RoleAll, "what to run: all, webhooks, workers or api")
	noMigrate := fs.Bool("no-migrate", false, "do not apply pending migrations on start")
	addr := fs.String("http-addr", "", "listen address (overrides CALLQUEUE_HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	cfg := config.FromEnv()
	if *addr != "" {
		cfg.HTTPAddr = *addr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopTracing, err := tracing.Setup(ctx, version)
	if err != nil {
		return fmt.Errorf("OTEL_EXPORTER_OTLP_*: %w", err)
	}
	defer func() {
		// Last, after the service: the spans of its shutdown are sent too.
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			log.Warn().Err(err).Msg("traces not flushed at shutdown")
		}
	}()
	if tracing.Enabled() {
		log.Info().Msg("exporting traces over OTLP/HTTP")
	}
	svc, err := service.New(ctx, cfg, service.Options{Role: *role, Migrate: !*noMigrate, Version: version, Commit: commit}, log)
	if err != nil {
		return err
	}
	// The signal starts the orderly stop below; the service itself runs on
	// a context of its own, so that a SIGTERM does not cancel dials in
	// flight: Shutdown lets them finish and records their answers.
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		_ = svc.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	log.Info().Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return svc.Shutdown(shutdownCtx)
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func openStore(ctx context.Context, needKey bool) (*store.Store, func(), error) {
	cfg := config.FromEnv()
	if err := cfg.RequireDatabase(); err != nil {
		return nil, nil, err
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, 4, store.Bounds(cfg.DB))
	if err != nil {
		return nil, nil, err
	}
	var sealer *store.Sealer
	if needKey {
		if sealer, err = store.NewSealer(cfg.SecretKey); err != nil {
			pool.Close()
			return nil, nil, errors.New("CALLQUEUE_SECRET_KEY must be set to 32 bytes (base64 or hex)")
		}
	}
	return store.New(pool, sealer), pool.Close, nil
}

func migrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: callqueue migrate up|down [N]|status") }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	ctx := context.Background()
	st, closeStore, err := openStore(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	m, err := migrations.New(st.Pool())
	if err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "up":
		applied, err := m.Up(store.Unbounded(ctx)) // a migration may outlast the query deadline
		for _, v := range applied {
			fmt.Fprintf(stdout, "applied %04d\n", v)
		}
		if err == nil && len(applied) == 0 {
			fmt.Fprintln(stdout, "schema is up to date")
		}
		return err
	case "down":
		n := 1
		if fs.NArg() > 1 {
			if n, err = strconv.Atoi(fs.Arg(1)); err != nil || n < 1 {
				return errors.New("migrate down N: N must be a positive number")
			}
		}
		reverted, err := m.Down(store.Unbounded(ctx), n)
		for _, v := range reverted {
			fmt.Fprintf(stdout, "reverted %04d\n", v)
		}
		return err
	case "status":
		st, err := m.Status(ctx)
		for _, s := range st {
			at := "pending"
			if !s.AppliedAt.IsZero() {
				at = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%04d_%s\t%s\n", s.Version, s.Name, at)
		}
		return err
	}
	fs.Usage()
	return fmt.Errorf("unknown migrate command %q", fs.Arg(0))
}

const tokenUsage = "Usage: callqueue token create --owner OWNER [--name NAME] | list [--owner OWNER] | revoke ID" //nolint:gosec // G101: usage text, not a credential

func token(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, tokenUsage)
		return nil
	}
	fs := flag.NewFlagSet("token "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	ownerFlag := fs.String("owner", "", "owner the token acts for")
	name := fs.String("name", "", "a name to recognise the token by")
	if err := fs.Parse(args[1:]); err != nil {
		return flagErr(err)
	}
	ctx := context.Background()
	st, closeStore, err := openStore(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	switch args[0] {
	case "create":
		if *ownerFlag == "" {
			return errors.New("token create: --owner is required")
		}
		t, plain, err := st.CreateToken(ctx, *ownerFlag, store.ActorCLI, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created token %s for owner %s (shown once):\n%s\n", t.ID, t.OwnerID, plain)
		return nil
	case "list":
		list, err := st.ListAllTokens(ctx)
		if *ownerFlag != "" {
			list, err = st.ListTokens(ctx, *ownerFlag)
		}
		for _, t := range list {
			state := "active"
			if t.RevokedAt != nil {
				state = "revoked"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", t.ID, t.OwnerID, t.Name, state)
		}
		return err
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("token revoke ID")
		}
		id, err := parseUUID(fs.Arg(0))
		if err != nil {
			return err
		}
		if err := st.RevokeAnyToken(ctx, store.ActorCLI, id); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("token revoke: no live token %s", id)
		} else if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", id)
		return nil
	}
	return fmt.Errorf("unknown token command %q", args[0])
}
