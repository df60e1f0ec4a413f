package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/phone"
	"github.com/callqueue/callqueue/store"
)

// suppressionJSON is one entry of POST .../suppressions.
type suppressionJSON struct {
	PhoneNumber *string `json:"phoneNumber"`
	Reason      *string `json:"reason"`
	ExpiresAt   *string `json:"expiresAt"`
}

// suppressionResult is the answer to POST .../suppressions.
type suppressionResult struct {
	Added    int        `json:"added"`
	Rejected []Rejected `json:"rejected"`
}

// suppression validates one entry; on a bad value it returns the field and
// the message instead.
func suppression(number, reason, expires string, region string, names [3]string) (store.Suppression, string, string) {
	var s store.Suppression
	e164, err := phone.Normalize(number, region)
	if err != nil {
		return s, names[0], "cannot be read as a phone number"
	}
	s.PhoneNumber = e164
	if s.Reason = strings.TrimSpace(reason); len(s.Reason) > 200 {
		return s, names[1], "must be at most 200 characters"
	}
	if expires = strings.TrimSpace(expires); expires != "" {
		t, err := time.Parse(time.RFC3339, expires)
		if err != nil {
			return s, names[2], "must be an RFC 3339 time"
		}
		s.ExpiresAt = &t
	}
	return s, "", ""
}

// parseSuppressions reads one entry, a JSON array of them, or text/csv
// with phone_number,reason,expires_at. A single bad entry is a 422; a bad
// row of a list is reported and skipped.
func parseSuppressions(r *http.Request, body []byte, region string) ([]store.Suppression, []Rejected, error) {
	rejected := []Rejected{}
	var out []store.Suppression
	if isCSV(r) {
		columns := [3]string{"phone_number", "reason", "expires_at"}
		skipped, err := readCSVUpload(body, func(_ int, row csvRow) (string, string) {
			s, field, msg := suppression(row.get("phone_number"), row.get("reason"), row.get("expires_at"), region, columns)
			if msg == "" {
				out = append(out, s)
			}
			return field, msg
		})
		if err != nil {
			return nil, nil, err
		}
		return out, skipped, nil
	}
	names := [3]string{"phoneNumber", "reason", "expiresAt"}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		var in suppressionJSON
		if err := jsonhttp.Decode(body, &in); err != nil {
			return nil, nil, err
		}
		s, field, msg := suppression(deref(in.PhoneNumber), deref(in.Reason), deref(in.ExpiresAt), region, names)
		if msg != "" {
			return nil, nil, jsonhttp.Invalid(field, "%s %s", field, msg)
		}
		return []store.Suppression{s}, rejected, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil || elems == nil {
		return nil, nil, jsonhttp.BadRequest("", "body must be a suppression object, an array of them, or text/csv")
	}
	if len(elems) > MaxRecipientsPerRequest {
		return nil, nil, tooManyRows(MaxRecipientsPerRequest)
	}
	for i, raw := range elems {
		var in suppressionJSON
		if err := jsonhttp.Decode(raw, &in); err != nil {
			rejected = append(rejected, Rejected{Row: i + 1, Message: "not a suppression object: " + err.Error()})
			continue
		}
		s, field, msg := suppression(deref(in.PhoneNumber), deref(in.Reason), deref(in.ExpiresAt), region, names)
		if msg != "" {
			rejected = append(rejected, Rejected{Row: i + 1, Field: field, Message: msg})
			continue
		}
		out = append(out, s)
	}
	return out, rejected, nil
}

// suppressionScope is the integration a suppressions route names, or
// uuid.Nil for the owner-wide list, with the region its numbers are read in.
func (a *API) suppressionScope(r *http.Request) (uuid.UUID, string, error) {
	if r.PathValue("id") == "" {
		return uuid.Nil, "", nil
	}
	id, err := pathID(r, "id")
	if err != nil {
		return uuid.Nil, "", err
	}
	if _, err := a.store.GetIntegration(r.Context(), owner(r.Context()), id); err != nil {
		return uuid.Nil, "", err
	}
	cfg, err := a.store.Config(r.Context(), id)
	if err != nil {
		return uuid.Nil, "", err
	}
	return id, phone.Region(cfg.Agent.Locale), nil
}

func (a *API) listSuppressions(w http.ResponseWriter, r *http.Request) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	id, _, err := a.suppressionScope(r)
	if err != nil {
		return err
	}
	out, err := a.store.ListSuppressions(r.Context(), owner(r.Context()), id, limit, offset)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) addSuppressions(w http.ResponseWriter, r *http.Request) error {
	id, region, err := a.suppressionScope(r)
	if err != nil {
		return err
	}
	body, err := jsonhttp.ReadBody(w, r, recipientsBodyLimit)
	if err != nil {
		return err
	}
	entries, rejected, err := parseSuppressions(r, body, region)
	if err != nil {
		return err
	}
	n, err := a.store.AddSuppressions(r.Context(), owner(r.Context()), id, entries, a.now())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, suppressionResult{Added: n, Rejected: rejected})
	return nil
}

func (a *API) deleteSuppression(w http.ResponseWriter, r *http.Request) error {
	id, region, err := a.suppressionScope(r)
	if err != nil {
		return err
	}
	number, err := phone.Normalize(r.PathValue("phone"), region)
	if err != nil {
		return jsonhttp.ErrNotFound
	}
	if err := a.store.DeleteSuppression(r.Context(), owner(r.Context()), id, number); err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}
