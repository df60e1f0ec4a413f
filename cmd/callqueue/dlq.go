package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/queue"
)

const dlqUsage = `Usage: callqueue dlq list [--stream S] [--integration ID] [--after N] [--limit N] [--json]
       callqueue dlq replay (--seq N | --all) [--stream S] [--integration ID]

Messages the workers could not process are kept in the dead-letter stream
with the reason. "list" shows them oldest first; "replay" puts them back to
their workers and removes them from the list. Replaying is idempotent: a
replayed message is processed under its original identity, so replaying it
again (or a message that was processed after all) changes nothing.

--stream is originate, events or postcall (or the stream's name).

The command reaches JetStream through NATS_URL, else the running service's
embedded server at CALLQUEUE_NATS_LISTEN (with its CALLQUEUE_NATS_TOKEN),
signing in as the service does; with --offline it opens the
embedded store under CALLQUEUE_DATA_DIR itself (stop the service first).
`

func dlq(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	case "list", "replay":
	default:
		fmt.Fprint(stderr, dlqUsage)
		return fmt.Errorf("unknown dlq command %q", args[0])
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage) }
	stream := fs.String("stream", "", "only dead letters of this stream: originate, events or postcall")
	integration := fs.String("integration", "", "only dead letters of this integration id")
	offline := fs.Bool("offline", false, "open the embedded store directly (the service must be stopped)")
	after := fs.Uint64("after", 0, "list: only dead letters after this sequence")
	limit := fs.Int("limit", 100, "list: at most this many (1..1000)")
	asJSON := fs.Bool("json", false, "list: one JSON object per line")
	seq := fs.Uint64("seq", 0, "replay: the dead letter with this sequence")
	all := fs.Bool("all", false, "replay: every dead letter the filters select")
	if err := fs.Parse(args[1:]); err != nil {
		return flagErr(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dlq %s: unexpected argument %q", args[0], fs.Arg(0))
	}
	f := queue.DeadLetterFilter{Stream: *stream, After: *after, Limit: *limit}
	if *stream != "" {
		if _, ok := queue.StreamOfKind(*stream); !ok {
			return fmt.Errorf("--stream %q: want originate, events or postcall", *stream)
		}
	}
	if *integration != "" {
		id, err := uuid.Parse(*integration)
		if err != nil {
			return fmt.Errorf("--integration: %w", err)
		}
		f.Integrations = map[uuid.UUID]bool{id: true}
	}
	seqSet := false
	fs.Visit(func(fl *flag.Flag) { seqSet = seqSet || fl.Name == "seq" })
	if args[0] == "replay" && seqSet == *all {
		return errors.New("dlq replay: give --seq N or --all")
	}
	if args[0] == "list" && (*limit < 1 || *limit > queue.DeadLetterLimitMax) {
		return errors.New("dlq list: --limit must be from 1 to 1000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	q, closeQueue, err := openQueue(ctx, *offline)
	if err != nil {
		return err
	}
	defer closeQueue()
	if args[0] == "list" {
		return dlqList(ctx, q, f, *asJSON, stdout)
	}
	if seqSet {
		return dlqReplayOne(ctx, q, *seq, f, stdout)
	}
	return dlqReplayAll(ctx, q, f, stdout)
}

func dlqList(ctx context.Context, q *queue.Queue, f queue.DeadLetterFilter, asJSON bool, stdout io.Writer) error {
	list, next, err := q.ListDeadLetters(ctx, f)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, dl := range list {
		if asJSON {
			if err := enc.Encode(dl); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%d\t%s #%d\t%s\t%s\t%s\n", dl.Seq, dl.OriginStream, dl.OriginSeq, dl.IntegrationID,
			dl.DeadAt.UTC().Format(time.RFC3339), dl.Reason)
	}
	if next > 0 && !asJSON {
		fmt.Fprintf(stdout, "more: --after %d\n", next)
	}
	return nil
}

func dlqReplayOne(ctx context.Context, q *queue.Queue, seq uint64, f queue.DeadLetterFilter, stdout io.Writer) error {
	dl, err := q.GetDeadLetter(ctx, seq)
	if errors.Is(err, queue.ErrNoDeadLetter) {
		fmt.Fprintf(stdout, "dead letter %d: %v; nothing to do\n", seq, err)
		return nil
	}
	if err != nil {
		return err
	}
	if sel, _ := queue.StreamOfKind(f.Stream); (f.Stream != "" && sel != dl.OriginStream) || (f.Integrations != nil && !f.Integrations[dl.IntegrationID]) {
		return fmt.Errorf("dead letter %d (%s, integration %s) is not selected by the filters", seq, dl.OriginStream, dl.IntegrationID)
	}
	return replayOne(ctx, q, seq, stdout)
}

func dlqReplayAll(ctx context.Context, q *queue.Queue, f queue.DeadLetterFilter, stdout io.Writer) error {
	n := 0
	for {
		f.Limit = queue.DeadLetterLimitMax
		list, next, err := q.ListDeadLetters(ctx, f)
		if err != nil {
			return err
		}
		for _, dl := range list {
			if err := replayOne(ctx, q, dl.Seq, stdout); err != nil {
				return err
			}
			n++
		}
		if next == 0 {
			break
		}
		f.After = next
	}
	fmt.Fprintf(stdout, "replayed %d dead letter(s)\n", n)
	return nil
}

func replayOne(ctx context.Context, q *queue.Queue, seq uint64, stdout io.Writer) error {
	dl, err := q.ReplayDeadLetter(ctx, seq)
	if errors.Is(err, queue.ErrNoDeadLetter) {
		return nil // replayed meanwhile
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d\t%s #%d\t%s\n", dl.Seq, dl.OriginStream, dl.OriginSeq, dl.IntegrationID)
	return nil
}

// openQueue connects to the service's JetStream (see dlqUsage).
func openQueue(ctx context.Context, offline bool) (*queue.Queue, func(), error) {
	cfg := config.FromEnv()
	auth, err := cfg.NATSAuth.Options()
	if err != nil {
		return nil, nil, err
	}
	opts := append([]nats.Option{nats.Name("callqueue-cli"), nats.Timeout(5 * time.Second)}, auth...)
	var (
		nc      *nats.Conn
		cleanup = func() {}
	)
	switch {
	case offline:
		ns, serr := queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: filepath.Join(cfg.DataDir, "nats")})
		if serr != nil {
			return nil, nil, serr
		}
		cleanup = ns.Shutdown
		nc, err = queue.ConnectEmbedded(ns, "callqueue-cli", "")
	case cfg.NATSURL != "":
		nc, err = nats.Connect(cfg.NATSURL, opts...)
	case cfg.NATSListen != "":
		nc, err = nats.Connect("nats://"+cfg.NATSListen, opts...)
	default:
		return nil, nil, errors.New("set NATS_URL (or CALLQUEUE_NATS_LISTEN for the service's embedded server), or stop the service and pass --offline")
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	q, err := queue.New(ctx, nc, queue.Options{Replicas: cfg.NATSReplicas, MaxBytes: cfg.StreamMaxBytes})
	if err != nil {
		nc.Close()
		cleanup()
		return nil, nil, err
	}
	return q, func() { nc.Close(); cleanup() }, nil
}
