package crm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/hmacsig"
)

// SignatureHeader carries "t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>"
// on every request to a webhook CRM.
const SignatureHeader = "X-Callqueue-Signature"

// SignatureToleranceDefault is the clock difference a webhook CRM should
// accept between a signature's t and its own clock.
const SignatureToleranceDefault = 5 * time.Minute

// Signature errors VerifySignature returns.
var (
	ErrSignatureMissing   = errors.New("signature header is missing")
	ErrSignatureMalformed = errors.New("signature header is malformed")
	ErrSignatureStale     = errors.New("signature timestamp is outside the tolerance")
	ErrSignatureMismatch  = errors.New("signature does not match")
)

// VerifySignature checks an X-Callqueue-Signature header against the raw
// request body, for CRM authors written in Go: the HMAC must match one of the
// header's v1 values and t must be within tolerance of now (either way, to
// allow for clock skew). A tolerance of zero or less skips the time check.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if strings.TrimSpace(header) == "" {
		return ErrSignatureMissing
	}
	if secret == "" {
		// An empty key is one anybody can sign with.
		return fmt.Errorf("%w: empty secret", ErrSignatureMismatch)
	}
	ts, unix, sigs, err := hmacsig.Parse(header, "v1")
	if err != nil {
		return ErrSignatureMalformed
	}
	want := []byte(hmacsig.Sum(secret, ts, body))
	if !slices.ContainsFunc(sigs, func(s string) bool { return hmac.Equal([]byte(strings.ToLower(s)), want) }) {
		return ErrSignatureMismatch
	}
	if skew := now.Sub(time.Unix(unix, 0)).Abs(); tolerance > 0 && skew > tolerance {
		return ErrSignatureStale
	}
	return nil
}

// webhook is a CRM behind the user's own HTTP endpoints: a lookup URL that
// answers a phone with a record, and an update URL that receives each call
// outcome, signed with the integration's CRM_WEBHOOK_SECRET.
type webhook struct {
	client *http.Client
	lookup *url.URL // nil: the CRM offers no lookup
	update string
	secret string
	now    func() time.Time
}

func newWebhook(cfg config.CRM, secret string, client *http.Client) (Client, error) {
	if cfg.UpdateURL == "" {
		return nil, &PermanentError{Message: "crm.update_url is required for a webhook CRM"}
	}
	if err := checkURL("crm.update_url", cfg.UpdateURL); err != nil {
		return nil, err
	}
	w := &webhook{client: sameMethodRedirects(client), update: cfg.UpdateURL, secret: secret, now: time.Now}
	if cfg.LookupURL != "" {
		if err := checkURL("crm.lookup_url", cfg.LookupURL); err != nil {
			return nil, err
		}
		w.lookup, _ = url.Parse(cfg.LookupURL) // checked just above
	}
	return w, nil
}

// webhookRecord is a lookup answer. recordId may be a string or a number, as
// CRMs' own ids are; name is optional.
type webhookRecord struct {
	RecordID json.RawMessage `json:"recordId"`
	Name     string          `json:"name"`
	Fields   map[string]any  `json:"fields"`
}

// Lookup implements Client: GET {lookup_url}?phone=<phone>. 404 (or an empty
// 2xx) is no record. The request is signed over an empty body, so the CRM
// can tell it comes from us.
func (w *webhook) Lookup(ctx context.Context, phone string) (*Record, error) {
	if w.lookup == nil || phone == "" {
		return nil, nil
	}
	target := *w.lookup
	q := "phone=" + url.QueryEscape(phone)
	if target.RawQuery != "" {
		q = target.RawQuery + "&" + q // keep the user's own parameters (a token, say) as written
	}
	target.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), http.NoBody)
	if err != nil {
		return nil, &PermanentError{Message: "build lookup request: " + err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(SignatureHeader, w.sign(nil))
	status, body, err := send(w.client, req)
	if err != nil {
		return nil, fmt.Errorf("crm webhook lookup: %w", err)
	}
	if status == http.StatusNotFound {
		return nil, nil
	}
	if err := answerError(status); err != nil {
		return nil, fmt.Errorf("crm webhook lookup: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var found webhookRecord
	if err := json.Unmarshal(body, &found); err != nil {
		return nil, fmt.Errorf("crm webhook lookup: the answer is not the expected JSON: %w", egress.ErrMalformed)
	}
	id, err := recordID(found.RecordID)
	if err != nil {
		return nil, fmt.Errorf("crm webhook lookup: %w", err)
	}
	return &Record{ID: id, Name: found.Name, Fields: found.Fields}, nil
}

// recordID reads a JSON string or number as an id; absent or null is "".
func recordID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", errors.New("recordId must be a string or a number")
}

// Apply implements Client: POST {update_url} with the update as JSON, the
// update's stable key as Idempotency-Key (a redelivery after a lost answer
// carries the same key), and the body's signature.
func (w *webhook) Apply(ctx context.Context, u Update) error {
	// An empty, non-nil RawMessage is not valid JSON; send null instead.
	if len(u.Analysis) == 0 {
		u.Analysis = nil
	}
	if len(u.DynamicVariables) == 0 {
		u.DynamicVariables = nil
	}
	body, err := json.Marshal(u)
	if err != nil {
		return &PermanentError{Message: "encode update: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.update, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Message: "build update request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey(u))
	req.Header.Set(SignatureHeader, w.sign(body))
	status, _, err := send(w.client, req)
	if err != nil {
		return fmt.Errorf("crm webhook update: %w", err)
	}
	if err := answerError(status); err != nil {
		return fmt.Errorf("crm webhook update: %w", err)
	}
	return nil
}

// idempotencyKey is u.Key or, should a caller leave it empty, the call and
// event, which are as stable: a call completes or finally fails once.
func idempotencyKey(u Update) string {
	if u.Key != "" {
		return u.Key
	}
	return u.CallID + ":" + u.Event
}

func (w *webhook) sign(body []byte) string {
	ts := strconv.FormatInt(w.now().Unix(), 10)
	return hmacsig.Header(w.secret, "v1", ts, body)
}
