package crm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/phone"
)

// NetHuntBaseURLDefault is NetHunt's Zapier API, used when the crm config
// has no base_url.
const NetHuntBaseURLDefault = "https://nethunt.com/api/v1/zapier"

// netHuntSearchLimit is how many records one search asks for: a tokenised
// search returns other people's records too, so the right one is picked
// from several (never the first blindly).
const netHuntSearchLimit = 10

// netHunt is the NetHunt CRM through its Zapier API, authenticated with the
// account's e-mail and API key (HTTP Basic).
type netHunt struct {
	client       *http.Client
	base         string // without a trailing slash
	folderID     string
	phoneField   string
	statusField  string
	statusValues map[string]string
	callLog      bool
	email        string
	apiKey       string
}

func newNetHunt(cfg config.CRM, fields config.CRMFields, email, apiKey string, client *http.Client) (Client, error) {
	base := strings.TrimRight(cmp.Or(cfg.BaseURL, NetHuntBaseURLDefault), "/")
	if err := checkURL("crm.base_url", base); err != nil {
		return nil, err
	}
	switch {
	case cfg.FolderID == "":
		return nil, &PermanentError{Message: "crm.folder_id is required for NetHunt"}
	case fields["phone"] == "":
		return nil, &PermanentError{Message: "crm_fields.phone must name the NetHunt phone field"}
	case fields["status"] == "":
		return nil, &PermanentError{Message: "crm_fields.status must name the NetHunt status field"}
	}
	return &netHunt{
		client: sameMethodRedirects(client), base: base, folderID: cfg.FolderID,
		phoneField: fields["phone"], statusField: fields["status"], statusValues: cfg.StatusValues, callLog: cfg.CallLog,
		email: email, apiKey: apiKey,
	}, nil
}

// netHuntRecord is one record of a find-record answer. The live API names
// the id recordId; id is read too.
type netHuntRecord struct {
	RecordID string         `json:"recordId"`
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Fields   map[string]any `json:"fields"`
}

// Lookup implements Client. NetHunt keeps phones as people typed them and
// its search is tokenised, so the phone field is searched for each form
// people type (phone.Forms), up to netHuntSearchLimit records each, and a
// record counts only when a value of its phone field, reduced to digits,
// ends with the number's national significant number. Several different
// such records are no match: an *AmbiguousError, since writing one call's
// outcome on the wrong person is worse than writing none.
func (n *netHunt) Lookup(ctx context.Context, number string) (*Record, error) {
	if number == "" {
		return nil, nil // an empty query would match any record
	}
	forms, err := phone.FormsOf(number)
	if err != nil {
		// A caller id without its "+" ("380991234567", as some platforms
		// send it); a number without its country code cannot be searched.
		if forms, err = phone.FormsOf("+" + phone.Digits(number)); err != nil {
			return nil, nil //nolint:nilerr // not a number any record can hold: a miss
		}
	}
	var matches []*Record
	for _, form := range forms.List() {
		found, err := n.find(ctx, form)
		if err != nil {
			return nil, err
		}
		for _, r := range found {
			id := cmp.Or(r.RecordID, r.ID)
			if id == "" || !phoneMatches(r.Fields[n.phoneField], forms) ||
				slices.ContainsFunc(matches, func(m *Record) bool { return m.ID == id }) {
				continue
			}
			matches = append(matches, &Record{ID: id, Name: r.Name, Fields: r.Fields})
		}
	}
	switch len(matches) {
	case 0:
		return nil, nil
	case 1:
		return matches[0], nil
	}
	return nil, &AmbiguousError{Matches: len(matches)}
}

// phoneMatches reports whether a phone field's value (a string, or an
// array of them for a multi-value field; a string may list several numbers
// split by , ; or /) holds the recipient's number: digits that end with its
// national significant number (contract §5), preceded by nothing, the
// country code (with or without 00) or the national trunk prefix. A longer
// number that merely ends in the same digits, another country's among
// them, is someone else.
func phoneMatches(v any, forms phone.Forms) bool {
	var typed []string
	switch v := v.(type) {
	case string:
		typed = []string{v}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				typed = append(typed, s)
			}
		}
	}
	nsn := forms.NSN
	if nsn == "" {
		return false
	}
	country := strings.TrimSuffix(forms.International, nsn)
	trunk := strings.TrimSuffix(forms.National, nsn)
	for _, s := range typed {
		for _, one := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '/' }) {
			d := phone.Digits(one)
			if !strings.HasSuffix(d, nsn) {
				continue
			}
			switch strings.TrimSuffix(d, nsn) {
			case "", country, "00" + country, trunk:
				return true
			}
		}
	}
	return false
}

// find searches the phone field for value: GET searches/find-record/{folder}
// with the query `"<phone field>":"<value>"`. A 404 is NetHunt's answer to
// a search that matches nothing.
func (n *netHunt) find(ctx context.Context, value string) ([]netHuntRecord, error) {
	q := url.Values{"query": {quote(n.phoneField) + ":" + quote(value)}, "limit": {fmt.Sprint(netHuntSearchLimit)}}
	target := n.base + "/searches/find-record/" + url.PathEscape(n.folderID) + "?" + q.Encode()
	body, err := n.do(ctx, http.MethodGet, target, nil)
	var status *PermanentError
	if errors.As(err, &status) && status.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nethunt find-record: %w", err)
	}
	var found []netHuntRecord
	if err := json.Unmarshal(body, &found); err != nil {
		return nil, errors.New("nethunt find-record: the answer is not the expected JSON")
	}
	return found, nil
}

// quote makes s one quoted term of a NetHunt search query.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Apply implements Client: it overwrites the status field with the
// outcome's label (crm.status_values), comments the summary when there is
// one and, with crm.call_log, logs the call. The record is u.RecordID or,
// without one, the one found by phone; when none is, a *NoRecordError.
//
// NetHunt has no idempotency key, so each request is a step recorded once
// applied (Update.StepDone): a retry skips what an earlier attempt did, and
// a comment or call log is never added twice.
func (n *netHunt) Apply(ctx context.Context, u Update) error {
	id := u.RecordID
	if id == "" {
		r, err := n.Lookup(ctx, u.PhoneNumber)
		var ambiguous *AmbiguousError
		switch {
		case errors.As(err, &ambiguous):
			return &NoRecordError{Matches: ambiguous.Matches}
		case err != nil:
			return err
		case r == nil:
			return &NoRecordError{}
		}
		id = r.ID
	}
	label := n.statusLabel(u)
	update := map[string]any{"fieldActions": map[string]any{
		n.statusField: map[string]any{"overwrite": true, "add": label},
	}}
	if err := n.step(ctx, u, StepUpdateRecord, "/actions/update-record/", id, update); err != nil {
		return err
	}
	if u.Summary != "" {
		if err := n.step(ctx, u, StepCreateComment, "/actions/create-comment/", id, map[string]string{"text": u.Summary}); err != nil {
			return err
		}
	}
	if !n.callLog {
		return nil
	}
	return n.step(ctx, u, StepCreateCallLog, "/actions/create-call-log/", id, callLogEntry(u, label))
}

// statusLabel is the status field's value for u: the label status_values
// maps its outcome to, else the outcome's name. The call's status stands
// in for an empty outcome, so an update never blanks the field.
func (n *netHunt) statusLabel(u Update) string {
	outcome := cmp.Or(u.Outcome, u.Status)
	return cmp.Or(n.statusValues[outcome], outcome)
}

// callLogEntry is NetHunt's call log of u: the text, when the call began
// (its end less its duration) and how long it took, in minutes.
func callLogEntry(u Update, label string) map[string]any {
	text := label
	if u.Summary != "" {
		text += "\n\n" + u.Summary
	}
	var secs float64
	if u.DurationSecs != nil && *u.DurationSecs > 0 {
		secs = *u.DurationSecs
	}
	entry := map[string]any{"text": text, "duration": math.Round(secs/60*100) / 100}
	if !u.FinishedAt.IsZero() {
		entry["time"] = u.FinishedAt.Add(-time.Duration(secs * float64(time.Second))).UTC().Format(time.RFC3339)
	}
	return entry
}

// step posts payload to path+id as the update's named step.
func (n *netHunt) step(ctx context.Context, u Update, name, path, id string, payload any) error {
	return u.step(ctx, name, func() error {
		if _, err := n.do(ctx, http.MethodPost, n.base+path+url.PathEscape(id), payload); err != nil {
			return fmt.Errorf("nethunt %s %s: %w", strings.Trim(strings.TrimPrefix(path, "/actions"), "/"), id, err)
		}
		return nil
	})
}

// The steps of a NetHunt update.
const (
	StepUpdateRecord  = "nethunt:update-record"
	StepCreateComment = "nethunt:create-comment"
	StepCreateCallLog = "nethunt:create-call-log"
)

// do sends one authenticated request with an optional JSON body and returns
// the 2xx answer's body, or the error answerError makes of any other status
// (a 429 as a *RateLimitedError carrying its Retry-After).
func (n *netHunt) do(ctx context.Context, method, target string, payload any) ([]byte, error) {
	var body io.Reader = http.NoBody
	if payload != nil {
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, &PermanentError{Message: "encode request: " + err.Error()}
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, &PermanentError{Message: "build request: " + err.Error()}
	}
	req.SetBasicAuth(n.email, n.apiKey)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	status, header, answer, err := sendWithHeader(n.client, req)
	if err != nil {
		return nil, err
	}
	if status == http.StatusTooManyRequests {
		return nil, &RateLimitedError{After: retryAfter(header.Get("Retry-After"), time.Now())}
	}
	if err := answerError(status); err != nil {
		return nil, err
	}
	return answer, nil
}
