// Command callqueue-bench measures callqueue on this machine and prints one
// line per figure: "metric: <name> <value> <unit>". It runs real components
// (Postgres from DATABASE_URL, an embedded JetStream server with the
// production sync policy) and compares against baselines measured in the
// same run where one exists (a bare net/http handler for intake).
//
//	go run ./cmd/callqueue-bench [-duration 5s] [-rate-limits unbinding|default|off] [-only intake,e2e,dispatch,limit,agentinit,outbox,admin,simulated,campaign_upload,campaign_dispatch,window_sweep,failover,retention,tenants] [-tenants 10000] [-caller-ids 50]
//
// Scenarios marked named-only (retention, which seeds a million calls;
// tenants, which makes 10,000 integrations twice) run only when -only names
// them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/queue/queuetest"
	"github.com/callqueue/callqueue/ratelimit"
)

func main() {
	queuetest.RunNodeIfChild() // the failover scenario's NATS servers run this binary
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "callqueue-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 5*time.Second, "how long each throughput measurement runs")
	only := flag.String("only", "", "comma-separated scenarios to run (default all)")
	clients := flag.Int("clients", 64, "concurrent HTTP clients for intake")
	syncPolicy := flag.String("nats-sync", "always", `embedded NATS sync policy: "always" (the default of callqueue serve) or a duration`)
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	retentionCalls := flag.Int("retention-calls", 1_000_000, "expired calls the retention scenario removes")
	tenantCount := flag.Int("tenants", 10_000, "integrations the tenants scenario makes, one call each")
	callerIDs := flag.Int("caller-ids", 50, "caller numbers in the pool campaign_dispatch measures after its run without one (0: none)")
	scaleCalls := flag.Int("scale-calls", 10_000_000, "terminal calls the scale scenario's database holds")
	scaleRounds := flag.Int("scale-rounds", 1, "how many times the scale scenario measures each part, fresh and seeded back to back")
	scaleOnly := flag.String("scale-only", "", "comma-separated scenarios the scale scenario measures (default all: admin,dispatch,campaign_dispatch,window_sweep,e2e)")
	tenantModes := flag.String("tenant-modes", "all,top", "CALLQUEUE_METRICS_PER_INTEGRATION modes the tenants scenario measures, in turn")
	rateLimits := flag.String("rate-limits", "unbinding",
		`request limits of the measured processes: "unbinding" (the limiter runs at rates no scenario reaches, so its cost counts and a fast machine is never refused), "default" (those of callqueue serve) or "off"`)
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		return errors.New("DATABASE_URL is not set (make bench sets it)")
	}
	want := func(name string, named bool) bool {
		if *only == "" {
			return !named
		}
		return strings.Contains(","+*only+",", ","+name+",")
	}
	log := zerolog.New(os.Stderr).Level(zerolog.ErrorLevel)
	ctx := context.Background()
	b := &bench{adminURL: dbURL, duration: *duration, clients: *clients, log: log, retentionCalls: *retentionCalls,
		tenantCount: *tenantCount, tenantModes: strings.Split(*tenantModes, ","), callerIDs: *callerIDs, scaleCalls: *scaleCalls, scaleOnly: *scaleOnly, scaleRounds: *scaleRounds}
	switch *rateLimits {
	case "unbinding":
		b.rateLimits = unbindingLimits()
	case "default":
		b.rateLimits = ratelimit.RulesDefault()
	case "off":
	default:
		return fmt.Errorf("-rate-limits: %q is none of unbinding, default, off", *rateLimits)
	}
	if *syncPolicy != "always" {
		d, err := time.ParseDuration(*syncPolicy)
		if err != nil {
			return fmt.Errorf("-nats-sync: %w", err)
		}
		b.syncInterval = d
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: %s, %d CPUs, %s per measurement\n", runtime.Version(), runtime.NumCPU(), *duration)

	scenarios := []struct {
		name  string
		run   func(context.Context) error
		named bool // run only when -only names it
	}{
		{"intake", b.intake, false},
		{"intake_guards", b.intakeGuards, false},
		{"e2e", b.e2e, false},
		{"dispatch", b.dispatch, false},
		{"limit", b.limit, false},
		{"agentinit", b.agentInit, false},
		{"outbox", b.outbox, false},
		{"admin", b.adminList, false},
		{"intake_visible", b.intakeVisible, false},
		{"simulated", b.simulated, false},
		{"campaign_upload", b.campaignUpload, false},
		{"campaign_dispatch", b.campaignDispatch, false},
		{"window_sweep", b.windowSweep, false},
		{"failover", b.failover, false},
		{"retention", b.retention, true},
		{"tenants", b.tenants, true},
		{"scale", b.scale, true},
	}
	for _, s := range scenarios {
		if !want(s.name, s.named) {
			continue
		}
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "callqueue-bench: %s took %s\n", s.name, time.Since(start).Round(time.Millisecond))
	}
	metric("rss_mib", float64(peakRSS())/1024, "MiB")
	return nil
}

// metricPrefix is put before the name of every metric printed (the scale
// scenario's second run).
var metricPrefix string

// recorded, when set, receives every metric printed, by its unprefixed name.
var recorded map[string]float64

func metric(name string, value float64, unit string) {
	if recorded != nil {
		recorded[name] = value
	}
	fmt.Printf("metric: %s%s %.2f %s\n", metricPrefix, name, value, unit)
}

// peakRSS is the process's peak resident set in KiB (VmHWM): the service
// and the load generator together, since both run in this process.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return 0
}
