package servicetest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// FakeLLMKey is the LLM_API_KEY the fake expects.
const FakeLLMKey = "sk-test-llm"

// ChatRequest is one chat/completions request the fake LLM received.
type ChatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ResponseFormat struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Authorization string `json:"-"`
}

// FakeLLM speaks OpenAI's chat completions API at POST /v1/chat/completions
// (base_url is URL+"/v1"): it answers with the content SetContent gave, or
// with the status SetStatus gave. Hang makes it hold requests until
// Release, as a stuck model server does; a held request ends when its
// client gives up.
type FakeLLM struct {
	*httptest.Server
	mu       sync.Mutex
	requests []ChatRequest
	content  string
	status   int
	hang     chan struct{}
	inFlight int
}

// NewFakeLLM starts a fake LLM for t.
func NewFakeLLM(t testing.TB) *FakeLLM {
	l := &FakeLLM{content: "{}"}
	l.Server = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(func() {
		l.Release()
		l.Close()
	})
	return l
}

// Hang makes requests wait until Release (or their client gives up).
func (l *FakeLLM) Hang() {
	l.mu.Lock()
	l.hang = make(chan struct{})
	l.mu.Unlock()
}

// Release lets held requests answer, and later ones answer at once.
func (l *FakeLLM) Release() {
	l.mu.Lock()
	if l.hang != nil {
		close(l.hang)
		l.hang = nil
	}
	l.mu.Unlock()
}

// InFlight is how many requests are being answered (or held).
func (l *FakeLLM) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// BaseURL is the analysis config's base_url.
func (l *FakeLLM) BaseURL() string { return l.URL + "/v1" }

// SetContent makes the model answer with v as its JSON content.
func (l *FakeLLM) SetContent(t testing.TB, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.content, l.status = string(raw), 0
	l.mu.Unlock()
}

// SetStatus makes the API fail with status.
func (l *FakeLLM) SetStatus(status int) {
	l.mu.Lock()
	l.status = status
	l.mu.Unlock()
}

// Requests returns every request so far.
func (l *FakeLLM) Requests() []ChatRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ChatRequest(nil), l.requests...)
}

func (l *FakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var req ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"invalid JSON","type":"invalid_request_error"}}`))
		return
	}
	req.Authorization = r.Header.Get("Authorization")
	l.mu.Lock()
	l.requests = append(l.requests, req)
	l.inFlight++
	hang := l.hang
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.inFlight--
		l.mu.Unlock()
	}()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	l.mu.Lock()
	content, status := l.content, l.status
	l.mu.Unlock()
	if req.Authorization != "Bearer "+FakeLLMKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}`))
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":{"message":"The server had an error","type":"server_error"}}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1768999152, "model": req.Model,
		"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content}}},
		"usage": map[string]any{"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
	})
}
