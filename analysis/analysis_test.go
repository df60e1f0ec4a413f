package analysis_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/breaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFromElevenLabs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		analysis string
		want     analysis.Result
	}{
		{
			name: "full analysis",
			analysis: `{"evaluation_criteria_results":{},"call_successful":"success",
				"transcript_summary":"Клієнт погодився на зустріч.",
				"data_collection_results":{
					"budget":{"data_collection_id":"budget","value":1500,"json_schema":{"type":"number"},"rationale":"said 1500"},
					"meeting_day":{"data_collection_id":"meeting_day","value":"вівторок","rationale":"..."},
					"email":{"data_collection_id":"email","value":null,"rationale":"not given"}}}`,
			want: analysis.Result{Outcome: "success", Summary: "Клієнт погодився на зустріч.", Source: "elevenlabs",
				Extracted: map[string]any{"budget": 1500.0, "meeting_day": "вівторок", "email": nil}},
		},
		{name: "failure", analysis: `{"call_successful":"failure","transcript_summary":"Hung up."}`,
			want: analysis.Result{Outcome: "failure", Summary: "Hung up.", Source: "elevenlabs"}},
		{name: "unknown", analysis: `{"call_successful":"unknown","data_collection_results":{}}`,
			want: analysis.Result{Outcome: "unknown", Source: "elevenlabs"}},
		{name: "case insensitive", analysis: `{"call_successful":"Success"}`,
			want: analysis.Result{Outcome: "success", Source: "elevenlabs"}},
		{name: "unrecognised call_successful", analysis: `{"call_successful":"maybe","transcript_summary":"s"}`,
			want: analysis.Result{Summary: "s", Source: "elevenlabs"}},
		{name: "malformed field keeps the others", analysis: `{"call_successful":true,"transcript_summary":"s",
			"data_collection_results":{"a":{"value":"x"},"b":"not an object"}}`,
			want: analysis.Result{Summary: "s", Source: "elevenlabs", Extracted: map[string]any{"a": "x"}}},
		{name: "missing", analysis: ``, want: analysis.Result{Source: "elevenlabs"}},
		{name: "null", analysis: `null`, want: analysis.Result{Source: "elevenlabs"}},
		{name: "not an object", analysis: `[1,2]`, want: analysis.Result{Source: "elevenlabs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := analysis.FromElevenLabs(json.RawMessage(tt.analysis)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromElevenLabs =\n %#v\nwant\n %#v", got, tt.want)
			}
		})
	}
}

// openAI is an httptest stand-in for an OpenAI-compatible chat completions
// server that records each request body and answers with its handler.
type openAI struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	header []http.Header
	paths  []string
}

func newOpenAI(t *testing.T, answer http.HandlerFunc) *openAI {
	t.Helper()
	o := &openAI{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		o.mu.Lock()
		o.bodies = append(o.bodies, body)
		o.header = append(o.header, r.Header.Clone())
		o.paths = append(o.paths, r.Method+" "+r.URL.Path)
		o.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *openAI) hits() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.bodies)
}

// completion answers with a chat completion whose message content is content.
func completion(content string) http.HandlerFunc {
	body, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1737000000, "model": "gpt-4o-mini",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content}}},
		"usage": map[string]any{"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
	})
	return reply(http.StatusOK, string(body))
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

const transcript = `[
	{"role":"agent","message":"Добрий день! Це ACME.","time_in_call_secs":0},
	{"role":"user","message":"Так, слухаю.","time_in_call_secs":2},
	{"role":"agent","message":null,"tool_calls":[{"tool_name":"lookup"}],"time_in_call_secs":3},
	{"role":"user","message":"Бюджет 1500, дзвоніть у вівторок.","time_in_call_secs":5}
]`

var (
	cfgFields = analysis.Config{Model: "gpt-4o-mini", Prompt: "Ти аналізуєш дзвінки відділу продажів.",
		Fields: []string{"budget", "callback_day"}}
	fallback = analysis.Result{Outcome: "success", Summary: "ElevenLabs summary", Source: "elevenlabs",
		Extracted: map[string]any{"budget": "from elevenlabs"}}
)

func withBase(cfg analysis.Config, base string) analysis.Config {
	cfg.BaseURL = base
	return cfg
}

func TestLLMAnalyzeRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        analysis.Config
		apiKey     string
		wantSystem string
		wantAuth   string
	}{
		{
			name: "configured prompt and fields", cfg: cfgFields, apiKey: "sk-test",
			wantSystem: "Ти аналізуєш дзвінки відділу продажів.\n\n" +
				`Answer with one JSON object with the keys "outcome" and "summary" and these fields to extract: ["budget","callback_day"]`,
			wantAuth: "Bearer sk-test",
		},
		{
			name: "default prompt, no fields, no key", cfg: analysis.Config{Model: "llama3"},
			wantSystem: analysis.PromptDefault + "\n\n" +
				`Answer with one JSON object with the keys "outcome" and "summary" and these fields to extract: []`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOpenAI(t, completion(`{"outcome":"success","summary":"ok"}`))
			got := analysis.New(o.srv.Client(), nil).Analyze(t.Context(), "integration-1",
				withBase(tt.cfg, o.srv.URL+"/v1/"), tt.apiKey, json.RawMessage(transcript), fallback)
			if got.Source != "llm" {
				t.Fatalf("Source = %q, want llm", got.Source)
			}
			if o.hits() != 1 {
				t.Fatalf("server received %d requests, want 1", o.hits())
			}
			if o.paths[0] != "POST /v1/chat/completions" {
				t.Errorf("request %q, want POST /v1/chat/completions", o.paths[0])
			}
			if h := o.header[0].Get("Authorization"); h != tt.wantAuth {
				t.Errorf("Authorization %q, want %q", h, tt.wantAuth)
			}
			if h := o.header[0].Get("Content-Type"); h != "application/json" {
				t.Errorf("Content-Type %q, want application/json", h)
			}
			want, _ := json.Marshal(map[string]any{
				"model": tt.cfg.Model,
				"messages": []any{
					map[string]any{"role": "system", "content": tt.wantSystem},
					map[string]any{"role": "user", "content": "agent: Добрий день! Це ACME.\n" +
						"user: Так, слухаю.\nuser: Бюджет 1500, дзвоніть у вівторок."},
				},
				"response_format": map[string]any{"type": "json_object"},
			})
			assertJSON(t, o.bodies[0], want)
		})
	}
}

func assertJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestLLMAnalyze(t *testing.T) {
	t.Parallel()
	llmSource := func(r analysis.Result) analysis.Result { r.Source = "llm"; return r }
	tests := []struct {
		name       string
		answer     http.HandlerFunc
		cfg        analysis.Config
		transcript string
		want       analysis.Result
		timeout    time.Duration
		wantHits   int
		wantErr    bool
	}{
		{
			name:   "fields, outcome and summary",
			answer: completion(`{"outcome":"callback","summary":" Передзвонити у вівторок. ","budget":1500,"callback_day":"вівторок","mood":"ignored"}`),
			cfg:    cfgFields, transcript: transcript, wantHits: 1,
			want: llmSource(analysis.Result{Outcome: "callback", Summary: "Передзвонити у вівторок.",
				Extracted: map[string]any{"budget": 1500.0, "callback_day": "вівторок"}}),
		},
		{
			// Kept in Postgres, which stores no U+0000, escaped or raw.
			name:   "text Postgres cannot store",
			answer: completion("{\"outcome\":\"call\\u0000back\",\"summary\":\"Пере\x00дзвонити\",\"callback_day\":\"вів\\u0000торок\"}"),
			cfg:    cfgFields, transcript: transcript, wantHits: 1,
			want: llmSource(analysis.Result{Outcome: "callback", Summary: "Передзвонити",
				Extracted: map[string]any{"callback_day": "вівторок"}}),
		},
		{
			name:   "no outcome or summary keeps ElevenLabs'",
			answer: completion(`{"budget":null,"outcome":42}`),
			cfg:    cfgFields, transcript: transcript, wantHits: 1,
			want: llmSource(analysis.Result{Outcome: "success", Summary: "ElevenLabs summary",
				Extracted: map[string]any{"budget": nil}}),
		},
		{name: "server error", answer: reply(500, `{"error":{"message":"boom"}}`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "bad key", answer: reply(401, `{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}`),
			cfg: cfgFields, transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "content not JSON", answer: completion(`The call went well.`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "content a JSON array", answer: completion(`["success"]`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "content null", answer: completion(`null`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "no choices", answer: reply(200, `{"choices":[]}`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "answer not JSON", answer: reply(200, `<html>gateway</html>`), cfg: cfgFields,
			transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "timeout", answer: func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			timeout: 100 * time.Millisecond, cfg: cfgFields, transcript: transcript, wantHits: 1, want: fallback, wantErr: true},
		{name: "not configured", answer: completion(`{}`), cfg: analysis.Config{Fields: []string{"budget"}},
			transcript: transcript, want: fallback},
		{name: "empty transcript", answer: completion(`{}`), cfg: cfgFields,
			transcript: `[]`, want: fallback, wantErr: true},
		{name: "transcript not a list", answer: completion(`{}`), cfg: cfgFields,
			transcript: `{"role":"user"}`, want: fallback, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOpenAI(t, tt.answer)
			cfg := tt.cfg
			if cfg.Model != "" {
				cfg.BaseURL = o.srv.URL + "/v1"
			}
			var gotErr error
			llm := analysis.New(o.srv.Client(), breaker.NewSet[analysis.Result](breaker.Settings{Peer: "llm"}))
			llm.Timeout = tt.timeout
			llm.OnError = func(_ string, err error) { gotErr = err }
			fb := fallback
			fb.Source = "" // Analyze marks the fallback's source itself
			got := llm.Analyze(t.Context(), "integration-1", cfg, "sk-test", json.RawMessage(tt.transcript), fb)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Analyze =\n %#v\nwant\n %#v", got, tt.want)
			}
			if n := o.hits(); n != tt.wantHits {
				t.Errorf("server received %d requests, want %d", n, tt.wantHits)
			}
			if (gotErr != nil) != tt.wantErr {
				t.Errorf("OnError got %v, want an error %v", gotErr, tt.wantErr)
			}
		})
	}
}

func TestLLMAnalyzeOpenBreakerFallsBack(t *testing.T) {
	t.Parallel()
	const trips = 2
	o := newOpenAI(t, reply(http.StatusServiceUnavailable, `{"error":{"message":"overloaded"}}`))
	set := breaker.NewSet[analysis.Result](breaker.Settings{Peer: "llm", ConsecutiveFailures: trips, OpenFor: time.Hour})
	llm := analysis.New(o.srv.Client(), set)
	var errs []error
	llm.OnError = func(_ string, err error) { errs = append(errs, err) }
	cfg := withBase(cfgFields, o.srv.URL+"/v1")
	for i := range trips + 2 {
		got := llm.Analyze(t.Context(), "integration-1", cfg, "sk-test", json.RawMessage(transcript), fallback)
		if !reflect.DeepEqual(got, fallback) {
			t.Fatalf("analysis %d = %#v, want the fallback", i, got)
		}
	}
	if n := o.hits(); n != trips {
		t.Errorf("server received %d requests, want %d: an open breaker must not call the LLM", n, trips)
	}
	if st := set.State("integration-1"); st != gobreaker.StateOpen {
		t.Errorf("breaker state %v, want open", st)
	}
	if len(errs) != trips+2 || !errors.Is(errs[len(errs)-1], breaker.ErrOpen) {
		t.Errorf("errors %v, want the last to be breaker.ErrOpen", errs)
	}
	if !set.Allows("integration-2") {
		t.Error("another integration's breaker is open; breakers must be per integration")
	}
}

func TestLLMAnalyzeMalformedAnswerIsTyped(t *testing.T) {
	t.Parallel()
	o := newOpenAI(t, completion(`not json`))
	var got error
	llm := analysis.New(o.srv.Client(), nil)
	llm.OnError = func(_ string, err error) { got = err }
	llm.Analyze(t.Context(), "integration-1", withBase(cfgFields, o.srv.URL), "k", json.RawMessage(transcript), fallback)
	if !errors.Is(got, analysis.ErrMalformedAnswer) {
		t.Errorf("err = %v, want ErrMalformedAnswer", got)
	}
}
