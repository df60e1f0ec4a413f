// Package crm talks to an integration's CRM: it looks a caller up by phone
// (for the agent's context) and applies a call's outcome (from the durable
// outbox). Adapters: NetHunt, a generic signed webhook, and none. Field
// names always come from the integration's crm_fields config.
package crm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/pgtext"
)

// Record is a CRM record found by phone.
type Record struct {
	ID     string
	Name   string
	Fields map[string]any
}

// Update is one call outcome to apply to the CRM. Key is stable for the
// update (the outbox row id), so a redelivery can be recognised. Its JSON is
// the generic webhook's body: every contract field is always present (null
// when unknown), so CRM authors can rely on the shape.
type Update struct {
	Key              string          `json:"-"`
	Event            string          `json:"event"` // call.completed | call.failed
	CallID           string          `json:"callId"`
	RecordID         string          `json:"recordId"`
	PhoneNumber      string          `json:"phoneNumber"`
	Status           string          `json:"status"`
	Attempt          int             `json:"attempt"`
	DurationSecs     *float64        `json:"durationSecs"`
	Outcome          string          `json:"outcome"`
	Summary          string          `json:"summary"`
	Analysis         json.RawMessage `json:"analysis"`
	DynamicVariables json.RawMessage `json:"dynamicVariables"`
	// CallerID is the caller number the attempt was dialled from
	// (voice.caller_ids); null without a pool.
	CallerID *string `json:"callerId"`
	// Extracted holds fields an LLM extracted from the transcript.
	Extracted map[string]any `json:"extracted,omitempty"`

	// FinishedAt is when the call ended (when its update was made), for
	// adapters that log the call itself.
	FinishedAt time.Time `json:"-"`

	// StepsDone are the parts of an update made of several requests that an
	// earlier attempt applied: an adapter skips them.
	StepsDone []string `json:"-"`
	// StepDone, when set, records a part as applied before the next one is
	// sent; its error stops the update (the next attempt goes on from there).
	StepDone func(ctx context.Context, step string) error `json:"-"`
}

// step runs one part of u unless an earlier attempt applied it, and
// records it once applied.
func (u Update) step(ctx context.Context, name string, apply func() error) error {
	for _, done := range u.StepsDone {
		if done == name {
			return nil
		}
	}
	if err := apply(); err != nil {
		return err
	}
	if u.StepDone != nil {
		if err := u.StepDone(ctx, name); err != nil {
			return fmt.Errorf("record %s as applied: %w", name, err)
		}
	}
	return nil
}

// Client is an integration's CRM.
type Client interface {
	// Lookup finds the record for phone; (nil, nil) when there is none.
	Lookup(ctx context.Context, phone string) (*Record, error)
	// Apply writes an update. A *PermanentError must not be retried.
	Apply(ctx context.Context, u Update) error
}

// PermanentError is a rejection that retrying cannot fix (a 4xx other than
// 408/429, or a configuration the adapter cannot work with).
type PermanentError struct {
	Status  int
	Message string
}

// Describe is what a tenant is shown (egress.Described): the status, or
// our own words about the configuration.
func (e *PermanentError) Describe() string {
	if e.Status == 0 {
		return e.Message
	}
	return egress.BadStatus(e.Status)
}

func (e *PermanentError) Error() string {
	if e.Status == 0 {
		return e.Message
	}
	return fmt.Sprintf("CRM answered %d: %s", e.Status, e.Message)
}

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// maxAnswerBytes bounds how much of any CRM answer is read.
const maxAnswerBytes = 1 << 20

// send performs req and returns the answer's status and at most
// maxAnswerBytes of its body. Its error is a transport failure, always
// retryable; the status is judged by the caller (see answerError).
func send(client *http.Client, req *http.Request) (int, []byte, error) {
	status, _, body, err := sendWithHeader(client, req)
	return status, body, err
}

// sendWithHeader is send that also returns the answer's header.
func sendWithHeader(client *http.Client, req *http.Request) (int, http.Header, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, egress.Fail("CRM request", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return resp.StatusCode, resp.Header, nil, egress.Fail("read CRM answer", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// checkURL rejects a URL the adapters cannot call.
func checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &PermanentError{Message: field + " must be an http(s) URL"}
	}
	return nil
}

// sameMethodRedirects returns a copy of client that follows a redirect only
// when it keeps the method. Go turns a POST answered 301/302/303 into a
// bodiless GET, whose 2xx would count an update as applied that never was;
// such an answer is left to answerError instead (3xx: retried).
func sameMethodRedirects(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Method != via[0].Method {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return fmt.Errorf("stopped after %d redirects", len(via))
		}
		return nil
	}
	return &c
}

// answerError judges a CRM's HTTP status: nil for 2xx, a *PermanentError for
// a 4xx other than 408/429 (retrying sends the same request to the same
// refusal), and a plain, retryable error for the rest (5xx, 408, 429, 3xx).
// The body is not kept: errors are shown to tenants, and an answer's body
// is what an integration URL pointed inside the network would read back.
func answerError(status int) error {
	msg := http.StatusText(status)
	switch {
	case status >= 200 && status < 300:
		return nil
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return &PermanentError{Status: status, Message: msg}
	}
	return &egress.StatusError{Op: "CRM", Status: status}
}

// Secrets the adapters read (their names, not values).
const (
	SecretNetHuntEmail  = "NETHUNT_EMAIL"      //nolint:gosec // G101: a secret's name, not a credential
	SecretNetHuntAPIKey = "NETHUNT_API_KEY"    //nolint:gosec // G101: a secret's name, not a credential
	SecretWebhook       = "CRM_WEBHOOK_SECRET" //nolint:gosec // G101: a secret's name, not a credential
)

// SecretsFor lists the secrets a CRM config needs.
func SecretsFor(cfg config.CRM) []string {
	switch cfg.Kind {
	case "nethunt":
		return []string{SecretNetHuntEmail, SecretNetHuntAPIKey}
	case "webhook":
		return []string{SecretWebhook}
	}
	return nil
}

// New builds the adapter for cfg. secrets holds the values SecretsFor
// names; a missing one is a PermanentError.
func New(cfg config.CRM, fields config.CRMFields, secrets map[string]string, client *http.Client) (Client, error) {
	if client == nil {
		client = egress.NewClient(egress.Policy{}, TimeoutDefault)
	}
	for _, k := range SecretsFor(cfg) {
		if secrets[k] == "" {
			return nil, &PermanentError{Message: "secret " + k + " is not set"}
		}
	}
	switch cfg.Kind {
	case "nethunt":
		return newNetHunt(cfg, fields, secrets[SecretNetHuntEmail], secrets[SecretNetHuntAPIKey], client)
	case "webhook":
		return newWebhook(cfg, secrets[SecretWebhook], client)
	case "none", "":
		return None{}, nil
	}
	return nil, &PermanentError{Message: "unknown CRM kind " + cfg.Kind}
}

// TimeoutDefault bounds one CRM request.
const TimeoutDefault = 10 * time.Second

// None is the CRM of an integration without one: no lookup, no update.
type None struct{}

// Lookup implements Client.
func (None) Lookup(context.Context, string) (*Record, error) { return nil, nil }

// Apply implements Client.
func (None) Apply(context.Context, Update) error { return nil }

// variableRenames are the crm_fields keys whose variable has another name.
var variableRenames = map[string]string{"name": "client_name", "company": "company", "source": "lead_source"}

// VariableName is the agent variable crm_fields' entry ours defines (a
// key Variables may give): every one is given to the agent, "" when the
// record lacks it. ok is false for phone and status, which define none.
func VariableName(ours string) (name string, ok bool) {
	if ours == "phone" || ours == "status" {
		return "", false
	}
	return cmp.Or(variableRenames[ours], ours), true
}

// Variables maps a record to the agent's dynamic variables through
// crm_fields: name → client_name, company → company, source → lead_source,
// and every other configured field under its own key.
func Variables(r *Record, fields config.CRMFields) map[string]any {
	out := map[string]any{}
	if r == nil {
		return out
	}
	for ours, theirs := range fields {
		key, isVariable := VariableName(ours)
		if !isVariable {
			continue
		}
		v, ok := r.Fields[theirs]
		if !ok || v == nil || v == "" {
			continue
		}
		// The CRM's text is kept (history, the agent's variables) without
		// what Postgres cannot store.
		out[key] = pgtext.CleanValue(v)
	}
	if _, ok := out["client_name"]; !ok && r.Name != "" {
		out["client_name"] = pgtext.Clean(r.Name)
	}
	return out
}
