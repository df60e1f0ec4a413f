package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// integrationBody is the writable part of an integration.
type integrationBody struct {
	Name                *string `json:"name"`
	Slug                *string `json:"slug"`
	Status              *string `json:"status"`
	AgentPrompt         *string `json:"agentPrompt"`
	ElevenLabsAgentID   *string `json:"elevenLabsAgentId"`
	SaasAssistantName   *string `json:"saasAssistantName"`
	PhoneNumber         *string `json:"phoneNumber"`
	VoiceAssistantSipID *string `json:"voiceAssistantSipId"`
	// Read-only fields a client may echo back from a GET; ignored.
	ID           json.RawMessage `json:"id"`
	OwnerID      json.RawMessage `json:"ownerId"`
	WebhookToken json.RawMessage `json:"webhookToken"`
	CreatedAt    json.RawMessage `json:"createdAt"`
	UpdatedAt    json.RawMessage `json:"updatedAt"`
}

func (b integrationBody) validate(requireName bool) (store.IntegrationFields, error) {
	f := store.IntegrationFields{Name: b.Name, Slug: b.Slug, Status: b.Status, AgentPrompt: b.AgentPrompt,
		ElevenLabsAgentID: b.ElevenLabsAgentID, SaasAssistantName: b.SaasAssistantName, PhoneNumber: b.PhoneNumber,
		VoiceAssistantSipID: b.VoiceAssistantSipID}
	switch {
	case requireName && (b.Name == nil || *b.Name == ""):
		return f, jsonhttp.Invalid("name", "name is required")
	case b.Name != nil && (*b.Name == "" || len(*b.Name) > 200):
		return f, jsonhttp.Invalid("name", "name must be 1 to 200 characters")
	case b.Slug != nil && !store.SlugPattern.MatchString(*b.Slug):
		return f, jsonhttp.Invalid("slug", "slug must match ^[a-z0-9][a-z0-9-]{0,62}$")
	case b.Slug != nil && store.ReservedSlug(*b.Slug):
		return f, jsonhttp.Invalid("slug", "slug %q is reserved", *b.Slug)
	case b.Status != nil && *b.Status != store.StatusPaused && *b.Status != store.StatusActive:
		return f, jsonhttp.Invalid("status", `status can only be set to "paused" or "active"`)
	}
	for field, v := range map[string]*string{"elevenLabsAgentId": b.ElevenLabsAgentID, "saasAssistantName": b.SaasAssistantName} {
		if v != nil && len(*v) > 255 {
			return f, jsonhttp.Invalid(field, "%s must be at most 255 characters", field)
		}
	}
	for field, v := range map[string]*string{"phoneNumber": b.PhoneNumber, "voiceAssistantSipId": b.VoiceAssistantSipID} {
		if v != nil && len(*v) > 50 {
			return f, jsonhttp.Invalid(field, "%s must be at most 50 characters", field)
		}
	}
	return f, nil
}

func (a *API) listIntegrations(w http.ResponseWriter, r *http.Request) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	order := r.URL.Query().Get("order")
	switch order {
	case "", "name", "-name", "createdAt", "-createdAt":
	default:
		return jsonhttp.BadRequest("order", "order must be one of name, -name, createdAt, -createdAt")
	}
	items, total, err := a.store.ListIntegrations(r.Context(), owner(r.Context()),
		store.ListOptions{Search: r.URL.Query().Get("search"), Order: order, Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	if items == nil {
		items = []store.Integration{}
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	jsonhttp.WriteJSON(w, http.StatusOK, items)
	return nil
}

func (a *API) createIntegration(w http.ResponseWriter, r *http.Request) error {
	var b integrationBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	f, err := b.validate(true)
	if err != nil {
		return err
	}
	f.Status = nil // a new integration starts not_configured
	in, err := a.store.CreateIntegration(r.Context(), owner(r.Context()), actor(r.Context()), f)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, in)
	return nil
}

func (a *API) integration(r *http.Request) (store.Integration, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return store.Integration{}, err
	}
	return a.store.GetIntegration(r.Context(), owner(r.Context()), id)
}

func (a *API) getIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, in)
	return nil
}

func (a *API) updateIntegration(replace bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		cur, err := a.integration(r)
		if err != nil {
			return err
		}
		var b integrationBody
		if err := readJSON(w, r, &b); err != nil {
			return err
		}
		f, err := b.validate(replace)
		if err != nil {
			return err
		}
		in, err := a.store.UpdateIntegration(r.Context(), owner(r.Context()), actor(r.Context()), cur.ID, f, replace)
		if err != nil {
			return err
		}
		a.onIntegrationChange(cur.Slug)
		a.kicker.Kick(in.ID)
		jsonhttp.WriteJSON(w, http.StatusOK, in)
		return nil
	}
}

func (a *API) deleteIntegration(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	if err := a.store.DeleteIntegration(r.Context(), owner(r.Context()), actor(r.Context()), in.ID); err != nil {
		return err
	}
	a.onIntegrationChange(in.Slug)
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}

func (a *API) rotateWebhookToken(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	in, err = a.store.RotateWebhookToken(r.Context(), owner(r.Context()), actor(r.Context()), in.ID)
	if err != nil {
		return err
	}
	a.onIntegrationChange(in.Slug)
	jsonhttp.WriteJSON(w, http.StatusOK, in)
	return nil
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	st, err := a.store.IntegrationStats(r.Context(), in.ID)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, st)
	return nil
}
