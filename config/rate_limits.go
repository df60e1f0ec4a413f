package config

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/callqueue/callqueue/ratelimit"
)

// Environment variables of the rate limits: each has a _PER_S (requests a
// second; 0 turns the limit off) and a _BURST.
const (
	envRateWebhook   = "CALLQUEUE_RATE_WEBHOOK"    // per integration
	envRateWebhookIP = "CALLQUEUE_RATE_WEBHOOK_IP" // per client address
	envRateAPI       = "CALLQUEUE_RATE_API"        // per client address
	envRateAPIToken  = "CALLQUEUE_RATE_API_TOKEN"  //nolint:gosec // G101: a variable name, not a credential (per bearer token)
)

// rateLimitsFromEnv reads the four limits, each defaulting to the
// ratelimit package's. It returns the names of variables it could not read.
func rateLimitsFromEnv() (ratelimit.Rules, []string) {
	var bad []string
	rule := func(prefix string, def ratelimit.Rule) ratelimit.Rule {
		r, err := ruleFromEnv(prefix, def)
		if err != "" {
			bad = append(bad, err)
		}
		return r
	}
	rules := ratelimit.Rules{
		WebhookIntegration: rule(envRateWebhook, ratelimit.WebhookIntegrationDefault),
		WebhookIP:          rule(envRateWebhookIP, ratelimit.WebhookIPDefault),
		APIIP:              rule(envRateAPI, ratelimit.APIIPDefault),
		APIToken:           rule(envRateAPIToken, ratelimit.APITokenDefault),
	}
	return rules, bad
}

// ruleFromEnv reads prefix_PER_S and prefix_BURST. A rate given without a
// burst allows two seconds' worth at once.
func ruleFromEnv(prefix string, def ratelimit.Rule) (ratelimit.Rule, string) {
	rawRate, rawBurst := strings.TrimSpace(os.Getenv(prefix+"_PER_S")), strings.TrimSpace(os.Getenv(prefix+"_BURST"))
	r := def
	if rawRate != "" {
		v, err := strconv.ParseFloat(rawRate, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return def, prefix + "_PER_S"
		}
		r = ratelimit.Rule{PerSecond: v, Burst: max(int(math.Min(math.Ceil(2*v), math.MaxInt32)), 1)}
	}
	if rawBurst != "" {
		b, err := strconv.Atoi(rawBurst)
		if err != nil || b < 1 {
			return def, prefix + "_BURST"
		}
		r.Burst = b
	}
	return r, ""
}

func validateRateLimits(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: a rate must be a non-negative number of requests a second (0: no limit), a burst a positive integer",
		strings.Join(bad, ", "))
}
