package crm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/callqueue/callqueue/config"
)

// NetHuntBaseURLDefault is NetHunt's Zapier API, used when the crm config
// has no base_url.
const NetHuntBaseURLDefault = "https://nethunt.com/api/v1/zapier"

// netHunt is the NetHunt CRM through its Zapier API, authenticated with the
// account's e-mail and API key (HTTP Basic).
type netHunt struct {
	client      *http.Client
	base        string // without a trailing slash
	folderID    string
	phoneField  string
	statusField string
	email       string
	apiKey      string
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
		phoneField: fields["phone"], statusField: fields["status"], email: email, apiKey: apiKey,
	}, nil
}

// netHuntRecord is one record of a find-record answer.
type netHuntRecord struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Fields map[string]any `json:"fields"`
}

// Lookup implements Client: GET searches/find-record/{folder} with the query
// "<phone field>":<phone>, limit 1.
func (n *netHunt) Lookup(ctx context.Context, phone string) (*Record, error) {
	if phone == "" {
		return nil, nil // an empty query would match any record
	}
	q := url.Values{"query": {`"` + n.phoneField + `":` + phone}, "limit": {"1"}}
	target := n.base + "/searches/find-record/" + url.PathEscape(n.folderID) + "?" + q.Encode()
	body, err := n.do(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("nethunt find-record: %w", err)
	}
	var found []netHuntRecord
	if err := json.Unmarshal(body, &found); err != nil {
		return nil, errors.New("nethunt find-record: the answer is not the expected JSON")
	}
	if len(found) == 0 {
		return nil, nil
	}
	r := found[0]
	return &Record{ID: r.ID, Name: r.Name, Fields: r.Fields}, nil
}

// Apply implements Client: it overwrites the status field with the outcome
// and, when there is a summary, comments it on the record. The record is
// u.RecordID or, without one, the one found by phone.
//
// NetHunt has no idempotency key, so each of the two requests is a step
// recorded once applied (Update.StepDone): a retry skips what an earlier
// attempt did, and a comment is never added twice.
func (n *netHunt) Apply(ctx context.Context, u Update) error {
	id := u.RecordID
	if id == "" {
		r, err := n.Lookup(ctx, u.PhoneNumber)
		if err != nil {
			return err
		}
		if r == nil || r.ID == "" {
			return &PermanentError{Message: "no CRM record for phone " + u.PhoneNumber}
		}
		id = r.ID
	}
	target := n.base + "/actions/update-record/" + url.PathEscape(id)
	// The call's status stands in for an empty outcome, so an update never
	// blanks the field.
	update := map[string]any{"fieldActions": map[string]any{
		n.statusField: map[string]any{"overwrite": true, "add": cmp.Or(u.Outcome, u.Status)},
	}}
	if err := u.step(ctx, StepUpdateRecord, func() error {
		if _, err := n.do(ctx, http.MethodPost, target, update); err != nil {
			return fmt.Errorf("nethunt update-record %s: %w", id, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if u.Summary == "" {
		return nil
	}
	return u.step(ctx, StepCreateComment, func() error {
		target := n.base + "/actions/create-comment/" + url.PathEscape(id)
		if _, err := n.do(ctx, http.MethodPost, target, map[string]string{"text": u.Summary}); err != nil {
			return fmt.Errorf("nethunt create-comment %s: %w", id, err)
		}
		return nil
	})
}

// The steps of a NetHunt update.
const (
	StepUpdateRecord  = "nethunt:update-record"
	StepCreateComment = "nethunt:create-comment"
)

// do sends one authenticated request with an optional JSON body and returns
// the 2xx answer's body, or the error answerError makes of any other status.
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
	status, answer, err := send(n.client, req)
	if err != nil {
		return nil, err
	}
	if err := answerError(status); err != nil {
		return nil, err
	}
	return answer, nil
}
