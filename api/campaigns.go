package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/phone"
	"github.com/callqueue/callqueue/store"
)

// campaignBody is the body of POST and PATCH; absent fields are nil.
type campaignBody struct {
	Name             *string         `json:"name"`
	ConcurrencyLimit json.RawMessage `json:"concurrencyLimit"`
	Priority         *int            `json:"priority"`
	StartAt          json.RawMessage `json:"startAt"`
	CallingWindow    json.RawMessage `json:"callingWindow"`
	RetryPolicy      json.RawMessage `json:"retryPolicy"`
	MaxAttempts      json.RawMessage `json:"maxAttempts"`
	Recipients       json.RawMessage `json:"recipients"`
}

// overlayKeys maps the campaign's fields to the call_handling keys they
// overlay.
var overlayKeys = []struct{ field, key string }{
	{"callingWindow", "calling_window"}, {"retryPolicy", "retry_policy"}, {"maxAttempts", "max_attempts"},
}

// apply sets the body's fields on spec and checks the result against the
// integration's call handling: the campaign's overlay must make a valid
// call_handling, as PUT /config/call_handling would accept it.
func (b campaignBody) apply(spec *store.CampaignSpec, cfg config.Integration, create bool) error {
	if b.Name != nil || create {
		name := strings.TrimSpace(deref(b.Name))
		if name == "" || len(name) > 200 {
			return jsonhttp.Invalid("name", "name is required, at most 200 characters")
		}
		spec.Name = name
	}
	if b.ConcurrencyLimit != nil {
		spec.ConcurrencyLimit = nil
		if !isNull(b.ConcurrencyLimit) {
			var n int
			if err := json.Unmarshal(b.ConcurrencyLimit, &n); err != nil || n < 1 || n > 1000 {
				return jsonhttp.Invalid("concurrencyLimit", "concurrencyLimit must be an integer from 1 to 1000, or null")
			}
			spec.ConcurrencyLimit = &n
		}
	}
	if b.Priority != nil {
		if *b.Priority < 1 || *b.Priority > 10 {
			return jsonhttp.Invalid("priority", "priority must be from 1 to 10")
		}
		spec.Priority = *b.Priority
	}
	if create && b.Priority == nil {
		spec.Priority = 5
	}
	if b.StartAt != nil {
		spec.StartAt = nil
		if !isNull(b.StartAt) {
			var s string
			t, err := time.Time{}, json.Unmarshal(b.StartAt, &s)
			if err == nil {
				t, err = time.Parse(time.RFC3339, s)
			}
			if err != nil {
				return jsonhttp.Invalid("startAt", "startAt must be an RFC 3339 time, or null")
			}
			spec.StartAt = &t
		}
	}
	if spec.Handling == nil {
		spec.Handling = map[string]json.RawMessage{}
	}
	for i, raw := range []json.RawMessage{b.CallingWindow, b.RetryPolicy, b.MaxAttempts} {
		k := overlayKeys[i]
		switch {
		case raw == nil:
		case isNull(raw):
			delete(spec.Handling, k.key)
		default:
			spec.Handling[k.key] = raw
			if _, err := cfg.CallHandling.Overlay(json.RawMessage(`{"` + k.key + `":` + string(raw) + `}`)); err != nil {
				return jsonhttp.Invalid(k.field, "%s has the wrong shape", k.field)
			}
		}
	}
	handling, err := cfg.CallHandling.Overlay(spec.Overlay())
	if err != nil {
		return jsonhttp.Invalid("", "%v", err)
	}
	if err := config.ValidateCallHandling(handling); err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			field := fe.Field
			for _, k := range overlayKeys {
				if rest, ok := strings.CutPrefix(fe.Field, k.key); ok {
					field = k.field + rest
				}
			}
			return jsonhttp.Invalid(field, "%s %s", field, fe.Message)
		}
		return err
	}
	return nil
}

// uploadResult is the answer to an upload of recipients.
type uploadResult struct {
	Added      int        `json:"added"`
	Duplicates int        `json:"duplicates"`
	Rejected   []Rejected `json:"rejected"`
}

// campaignCreated is a new campaign, with what became of the recipients
// sent with it.
type campaignCreated struct {
	store.Campaign
	Upload *uploadResult `json:"upload,omitempty"`
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request) error {
	integrationID, err := pathID(r, "id")
	if err != nil {
		return err
	}
	// Recipients sent with the campaign share the 1 MiB of any JSON body;
	// long lists go to /recipients.
	var b campaignBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	ctx, who := r.Context(), owner(r.Context())
	if _, err := a.store.GetIntegration(ctx, who, integrationID); err != nil {
		return err
	}
	cfg, err := a.store.Config(ctx, integrationID)
	if err != nil {
		return err
	}
	var spec store.CampaignSpec
	if err := b.apply(&spec, cfg, true); err != nil {
		return err
	}
	var recipients []store.Recipient
	var rejected []Rejected
	if b.Recipients != nil && !isNull(b.Recipients) {
		var elems []json.RawMessage
		if err := json.Unmarshal(b.Recipients, &elems); err != nil {
			return jsonhttp.BadRequest("recipients", "recipients must be an array")
		}
		if recipients, rejected, err = decodeRecipientsJSON(elems, phone.Region(cfg.Agent.Locale), ""); err != nil {
			return err
		}
	}
	c, err := a.store.CreateCampaign(ctx, who, integrationID, spec, a.now())
	if err != nil {
		return err
	}
	out := campaignCreated{Campaign: c}
	if b.Recipients != nil && !isNull(b.Recipients) {
		res, err := a.addRecipients(r, c.ID, recipients, rejected)
		if err != nil {
			return err
		}
		out.Upload = &res
		if out.Campaign, err = a.store.GetCampaign(ctx, who, c.ID); err != nil {
			return err
		}
	}
	a.kicker.Kick(integrationID)
	jsonhttp.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) addRecipients(r *http.Request, campaignID uuid.UUID, recipients []store.Recipient, rejected []Rejected) (uploadResult, error) {
	integrationID, added, err := a.store.AddRecipients(r.Context(), owner(r.Context()), campaignID, recipients, a.now())
	if errors.Is(err, store.ErrCampaignClosed) {
		return uploadResult{}, jsonhttp.Errorf(http.StatusConflict, "conflict", "", "a cancelled campaign takes no recipients")
	}
	if err != nil {
		return uploadResult{}, err
	}
	if added > 0 {
		a.kicker.Kick(integrationID)
	}
	return uploadResult{Added: added, Duplicates: len(recipients) - added, Rejected: rejected}, nil
}

func (a *API) uploadRecipients(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ctx, who := r.Context(), owner(r.Context())
	c, err := a.store.GetCampaign(ctx, who, id)
	if err != nil {
		return err
	}
	cfg, err := a.store.Config(ctx, c.IntegrationID)
	if err != nil {
		return err
	}
	body, err := jsonhttp.ReadBody(w, r, recipientsBodyLimit)
	if err != nil {
		return err
	}
	parse := parseRecipientsJSON
	if isCSV(r) {
		parse = parseRecipientsCSV
	}
	recipients, rejected, err := parse(body, phone.Region(cfg.Agent.Locale))
	if err != nil {
		return err
	}
	res, err := a.addRecipients(r, id, recipients, rejected)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	f := store.CampaignFilter{Limit: limit, Offset: offset, Status: r.URL.Query().Get("status")}
	switch f.Status {
	case "", store.CampaignScheduled, store.CampaignRunning, store.CampaignPaused, store.CampaignCompleted, store.CampaignCancelled:
	default:
		return jsonhttp.BadRequest("status", "unknown campaign status %q", f.Status)
	}
	if v := r.URL.Query().Get("integrationId"); v != "" {
		if f.IntegrationID, err = uuid.Parse(v); err != nil {
			return jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
	}
	out, err := a.store.ListCampaigns(r.Context(), owner(r.Context()), f)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	c, err := a.store.GetCampaign(r.Context(), owner(r.Context()), id)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) updateCampaign(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var b campaignBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	if b.Recipients != nil {
		return jsonhttp.BadRequest("recipients", "recipients are added with POST /api/campaigns/{id}/recipients")
	}
	c, err := a.store.UpdateCampaign(r.Context(), owner(r.Context()), id, a.now(), func(spec *store.CampaignSpec, cfg config.Integration) error {
		return b.apply(spec, cfg, false)
	})
	if err != nil {
		return err
	}
	a.kicker.Kick(c.IntegrationID)
	jsonhttp.WriteJSON(w, http.StatusOK, c)
	return nil
}

// changeCampaignStatus serves pause, resume and cancel.
func (a *API) changeCampaignStatus(action string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		c, err := a.store.ChangeCampaignStatus(r.Context(), owner(r.Context()), id, action, a.now())
		if err != nil {
			return err
		}
		if action == store.CampaignResume {
			a.kicker.Kick(c.IntegrationID)
		}
		jsonhttp.WriteJSON(w, http.StatusOK, c)
		return nil
	}
}

// campaignCallsCSV exports one row per recipient.
func (a *API) campaignCallsCSV(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	out := csv.NewWriter(&buf)
	_ = out.Write([]string{"phone_number", "record_id", "external_id", "status", "attempts", "outcome", "duration_secs", "updated_at"})
	err = a.store.CampaignCalls(r.Context(), owner(r.Context()), id, func(c store.Call) error {
		duration := ""
		if c.DurationSecs != nil {
			duration = strconv.FormatFloat(*c.DurationSecs, 'f', -1, 64)
		}
		row := []string{c.PhoneNumber, deref(c.RecordID), deref(c.ExternalID), string(c.Status), strconv.Itoa(c.Attempt),
			deref(c.Outcome), duration, c.UpdatedAt.UTC().Format(time.RFC3339)}
		for i := range row {
			row[i] = spreadsheetCell(row[i])
		}
		return out.Write(row)
	})
	if err != nil {
		return err
	}
	out.Flush()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="campaign-%s-calls.csv"`, id))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(buf.Bytes())
	return err
}
