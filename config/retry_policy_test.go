package config_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/callqueue/callqueue/config"
)

func TestRetryPolicyValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		field string // "" when valid
	}{
		{"absent", `{}`, ""},
		{"every outcome", `{"retry_policy": {"no_answer": {"max_attempts": 4, "delays_secs": [1800, 7200, 86400]},
			"busy": {"max_attempts": 2, "delays_secs": [60]}, "voicemail": {"max_attempts": 1},
			"short_call": {"max_attempts": 20, "delays_secs": [0]}, "dial_error": {"max_attempts": 3, "delays_secs": [2592000]}}}`, ""},
		{"unknown outcome", `{"retry_policy": {"answered": {"max_attempts": 2}}}`, "retry_policy.answered"},
		{"unknown rule field", `{"retry_policy": {"busy": {"max_attempts": 2, "delay": 5}}}`, "retry_policy.busy.delay"},
		{"max_attempts missing", `{"retry_policy": {"busy": {"delays_secs": [60]}}}`, "retry_policy.busy.max_attempts"},
		{"max_attempts too high", `{"retry_policy": {"busy": {"max_attempts": 21}}}`, "retry_policy.busy.max_attempts"},
		{"negative delay", `{"retry_policy": {"no_answer": {"max_attempts": 2, "delays_secs": [60, -1]}}}`, "retry_policy.no_answer.delays_secs[1]"},
		{"delay over 30 days", `{"retry_policy": {"voicemail": {"max_attempts": 2, "delays_secs": [2592001]}}}`, "retry_policy.voicemail.delays_secs[0]"},
		{"too many delays", `{"retry_policy": {"short_call": {"max_attempts": 2, "delays_secs": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21]}}}`, "retry_policy.short_call.delays_secs"},
		{"not an object", `{"retry_policy": [1]}`, "retry_policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := config.Normalize(config.KeyCallHandling, json.RawMessage(tt.value))
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				var back config.CallHandling
				if err := json.Unmarshal(out, &back); err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Normalize error = %v, want a FieldError on %q", err, tt.field)
			}
		})
	}
}

func TestRetryRuleDelay(t *testing.T) {
	t.Parallel()
	r := config.RetryRule{MaxAttempts: 5, DelaysSecs: []int{10, 20}}
	for attempt, want := range map[int]int{0: 10, 1: 10, 2: 20, 3: 20, 9: 20} {
		if got := r.Delay(attempt); got.Seconds() != float64(want) {
			t.Errorf("Delay(%d) = %s, want %ds", attempt, got, want)
		}
	}
	var p *config.RetryPolicy
	if p.Rule(config.OutcomeBusy) != nil {
		t.Fatal("a nil policy has rules")
	}
}
