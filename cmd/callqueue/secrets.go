package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

const secretsUsage = `Usage: callqueue secrets rotate-key --new KEY [--old KEY]` + //nolint:gosec // G101: usage text, not a credential
	`

Re-encrypts every secret and credential value and every integration's
webhook token under a new 32-byte key (base64 or hex), in one transaction:
if any value does not decrypt with the old key, nothing changes and the
command fails naming how many did not.

Stop the service first (a process still running with the old key would keep
writing under it), rotate, then start it with CALLQUEUE_SECRET_KEY set to the
new key. Keys given in the environment stay out of the process list:
--old defaults to CALLQUEUE_SECRET_KEY, --new to CALLQUEUE_NEW_SECRET_KEY.
`

func secrets(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, secretsUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, secretsUsage)
		return nil
	case "rotate-key":
	default:
		fmt.Fprint(stderr, secretsUsage)
		return fmt.Errorf("unknown secrets command %q", args[0])
	}
	fs := flag.NewFlagSet("secrets rotate-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, secretsUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	oldFlag := fs.String("old", "", "the key the values are encrypted with now (default $CALLQUEUE_SECRET_KEY)")
	newFlag := fs.String("new", "", "the key to encrypt them with (default $CALLQUEUE_NEW_SECRET_KEY)")
	if err := fs.Parse(args[1:]); err != nil {
		return flagErr(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("secrets rotate-key takes no arguments, got %q", fs.Args())
	}
	oldKey, err := sealerFrom("--old", "CALLQUEUE_SECRET_KEY", *oldFlag)
	if err != nil {
		return err
	}
	newKey, err := sealerFrom("--new", "CALLQUEUE_NEW_SECRET_KEY", *newFlag)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, closeStore, err := openStore(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	n, err := st.RotateKey(ctx, oldKey, newKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted %d values under the new key; start the service with CALLQUEUE_SECRET_KEY set to it\n", n)
	return nil
}

// sealerFrom reads a key from its flag, else from env. Errors name where
// the key came from, never the key.
func sealerFrom(flagName, env, value string) (*store.Sealer, error) {
	raw := cmp.Or(value, os.Getenv(env))
	if raw == "" {
		return nil, fmt.Errorf("secrets rotate-key: %s is required (or set %s)", flagName, env)
	}
	key, err := config.ParseSecretKey(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets rotate-key: %s: %w", flagName, err)
	}
	sealer, err := store.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("secrets rotate-key: %s: %w", flagName, err)
	}
	return sealer, nil
}
