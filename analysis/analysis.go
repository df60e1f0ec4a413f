// Package analysis derives a finished call's outcome, summary and extracted
// fields. ElevenLabs analyses every conversation itself (FromElevenLabs); an
// integration that sets the "analysis" config key has an OpenAI-compatible
// LLM read the transcript instead (LLM.Analyze), with ElevenLabs' analysis as
// the fallback whenever the LLM cannot answer, so a slow or broken LLM never
// holds up or fails a call.
package analysis

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/pgtext"
)

// ConfigKey is the integration config key Config is decoded from.
const ConfigKey = "analysis"

// Sources of a Result.
const (
	SourceElevenLabs = "elevenlabs"
	SourceLLM        = "llm"
)

// Outcomes read from ElevenLabs' call_successful.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeUnknown = "unknown"
)

// TimeoutDefault bounds one LLM analysis when LLM.Timeout is zero.
const TimeoutDefault = 20 * time.Second

// PromptDefault is the system prompt when Config.Prompt is empty.
const PromptDefault = "You analyse the transcript of an outbound phone call made by a voice agent. " +
	"Judge the call's outcome and summarise it in two or three sentences."

// answerLimit bounds how much of the LLM's answer is read.
const answerLimit = 1 << 20

// ErrMalformedAnswer is an LLM answer that is not a chat completion whose
// content is a JSON object. It says the model misbehaved rather than that the
// server is down, so a breaker Set may count it as a success (IsSuccessful).
var ErrMalformedAnswer = fmt.Errorf("llm answer: %w", egress.ErrMalformed)

// Config is the integration's "analysis" config key:
// {"base_url": "https://api.openai.com/v1", "model": "...", "prompt": "...", "fields": ["..."]}.
type Config struct {
	BaseURL string   `json:"base_url"`
	Model   string   `json:"model"`
	Prompt  string   `json:"prompt"`
	Fields  []string `json:"fields"`
}

// Enabled reports whether an LLM is configured.
func (c Config) Enabled() bool { return c.BaseURL != "" && c.Model != "" }

// Result is a call's analysis.
type Result struct {
	Outcome   string         `json:"outcome,omitempty"`
	Summary   string         `json:"summary,omitempty"`
	Extracted map[string]any `json:"extracted,omitempty"`
	// Source is SourceElevenLabs or SourceLLM.
	Source string `json:"source"`
}

// FromElevenLabs reads the analysis object of a post_call_transcription
// webhook: call_successful becomes Outcome (empty when it is none of success,
// failure, unknown), transcript_summary Summary, and each
// data_collection_results entry's value an Extracted field. Fields are read
// one by one, so one malformed field does not lose the others.
func FromElevenLabs(analysis json.RawMessage) Result {
	out := Result{Source: SourceElevenLabs}
	var fields map[string]json.RawMessage
	if json.Unmarshal(analysis, &fields) != nil {
		return out
	}
	var successful string
	if json.Unmarshal(fields["call_successful"], &successful) == nil {
		switch s := strings.ToLower(strings.TrimSpace(successful)); s {
		case OutcomeSuccess, OutcomeFailure, OutcomeUnknown:
			out.Outcome = s
		}
	}
	_ = json.Unmarshal(fields["transcript_summary"], &out.Summary) // optional
	var collected map[string]json.RawMessage
	if json.Unmarshal(fields["data_collection_results"], &collected) == nil {
		for name, raw := range collected {
			var item struct {
				Value any `json:"value"`
			}
			if json.Unmarshal(raw, &item) != nil {
				continue
			}
			if out.Extracted == nil {
				out.Extracted = map[string]any{}
			}
			out.Extracted[name] = item.Value
		}
	}
	return out
}

// LLM analyses transcripts with an OpenAI-compatible chat completions API,
// through one circuit breaker per integration.
type LLM struct {
	// Timeout bounds one analysis, breaker included; zero means TimeoutDefault.
	Timeout time.Duration
	// OnError, if set, is told why an analysis fell back to ElevenLabs'.
	OnError func(integrationKey string, err error)

	client   *http.Client
	breakers *breaker.Set[Result]
}

// New returns an LLM analyser. A nil client gets a default one (Timeout
// bounds each analysis); a nil breakers calls the LLM without a breaker.
func New(client *http.Client, breakers *breaker.Set[Result]) *LLM {
	if client == nil {
		client = egress.NewClient(egress.Policy{}, 0)
	}
	return &LLM{client: client, breakers: breakers}
}

// Analyze asks the LLM configured by cfg to analyse transcript (ElevenLabs'
// [{role, message}, ...]) and returns its Result, with Source SourceLLM. The
// LLM's "outcome" and "summary" become Outcome and Summary (fallback's when it
// gives none) and the configured fields it answers become Extracted.
//
// Analyze never fails: when no LLM is configured, the transcript is empty, the
// breaker is open, or the LLM errs, times out or answers malformed content, it
// returns fallback (ElevenLabs' own analysis) with Source SourceElevenLabs.
func (l *LLM) Analyze(ctx context.Context, integrationKey string, cfg Config, apiKey string,
	transcript json.RawMessage, fallback Result) Result {
	fallback.Source = SourceElevenLabs
	if l == nil || !cfg.Enabled() {
		return fallback
	}
	res, err := l.analyze(ctx, integrationKey, cfg, apiKey, transcript, fallback)
	if err != nil {
		if l.OnError != nil {
			l.OnError(integrationKey, err)
		}
		return fallback
	}
	return res
}

func (l *LLM) analyze(ctx context.Context, integrationKey string, cfg Config, apiKey string,
	transcript json.RawMessage, fallback Result) (Result, error) {
	lines, err := renderTranscript(transcript)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(l.Timeout, TimeoutDefault))
	defer cancel()
	call := func() (Result, error) { return l.complete(ctx, cfg, apiKey, lines, fallback) }
	if l.breakers == nil {
		return call()
	}
	return l.breakers.Execute(integrationKey, call)
}

// renderTranscript writes the transcript as "role: message" lines, skipping
// turns without text (tool calls).
func renderTranscript(transcript json.RawMessage) (string, error) {
	var turns []struct {
		Role    string `json:"role"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(transcript, &turns); err != nil {
		return "", fmt.Errorf("transcript is not a list of turns: %w", err)
	}
	var b strings.Builder
	for _, t := range turns {
		if msg := strings.TrimSpace(t.Message); msg != "" {
			fmt.Fprintf(&b, "%s: %s\n", t.Role, msg)
		}
	}
	if b.Len() == 0 {
		return "", errors.New("transcript has no messages")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model          string        `json:"model"`
	Messages       []chatMessage `json:"messages"`
	ResponseFormat struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type chatAnswer struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// systemPrompt is the configured prompt plus what to answer: JSON mode
// (response_format json_object) also requires the word JSON in a message.
func systemPrompt(cfg Config) string {
	list := cfg.Fields
	if list == nil {
		list = []string{}
	}
	fields, _ := json.Marshal(list)
	return cmp.Or(cfg.Prompt, PromptDefault) + "\n\n" +
		`Answer with one JSON object with the keys "outcome" and "summary" and these fields to extract: ` + string(fields)
}

// complete is one POST {base_url}/chat/completions.
func (l *LLM) complete(ctx context.Context, cfg Config, apiKey, lines string, fallback Result) (Result, error) {
	req := chatRequest{Model: cfg.Model, Messages: []chatMessage{
		{Role: "system", Content: systemPrompt(cfg)},
		{Role: "user", Content: lines},
	}}
	req.ResponseFormat.Type = "json_object"
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, err
	}
	url := strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions"
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	httpReq.Header.Set("Content-Type", "application/json")
	if apiKey != "" { // local OpenAI-compatible servers may need none
		httpReq.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := l.client.Do(httpReq)
	if err != nil {
		return Result{}, egress.Fail("llm analysis", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, answerLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Result{}, &egress.StatusError{Op: "llm analysis", Status: resp.StatusCode}
	}
	var ans chatAnswer
	if err := json.Unmarshal(raw, &ans); err != nil || len(ans.Choices) == 0 {
		return Result{}, fmt.Errorf("%w: no choices", ErrMalformedAnswer)
	}
	var content map[string]any
	// The model's text is kept (the call's analysis) without what Postgres
	// cannot store, whether it wrote U+0000 raw or escaped.
	answer := pgtext.CleanJSON([]byte(pgtext.Clean(strings.TrimSpace(ans.Choices[0].Message.Content))))
	if err := json.Unmarshal(answer, &content); err != nil || content == nil {
		return Result{}, fmt.Errorf("%w: content is not a JSON object", ErrMalformedAnswer)
	}
	out := Result{Source: SourceLLM, Outcome: fallback.Outcome, Summary: fallback.Summary}
	if s, ok := content["outcome"].(string); ok && strings.TrimSpace(s) != "" {
		out.Outcome = strings.TrimSpace(s)
	}
	if s, ok := content["summary"].(string); ok && strings.TrimSpace(s) != "" {
		out.Summary = strings.TrimSpace(s)
	}
	for _, f := range cfg.Fields {
		if v, ok := content[f]; ok {
			if out.Extracted == nil {
				out.Extracted = map[string]any{}
			}
			out.Extracted[f] = v
		}
	}
	return out, nil
}
