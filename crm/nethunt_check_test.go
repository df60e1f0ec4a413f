package crm_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/crm/nethunttest"
)

// TestCheckNetHunt: a NetHunt configuration is checked against NetHunt, and
// what it refuses is named: the credentials, the base URL, the folder, or
// the crm_fields entry whose field the folder lacks. NetHunt not answering
// is not the configuration's fault.
func TestCheckNetHunt(t *testing.T) {
	t.Parallel()
	with := func(k, v string) config.CRMFields {
		f := maps.Clone(defaultFields)
		f[k] = v
		return f
	}
	tests := []struct {
		name          string
		cfg           config.CRM
		fields        config.CRMFields
		email, apiKey string
		setup         func(nh *nethunttest.Server)
		wantField     string // "" with wantDown false: accepted
		wantDown      bool
	}{
		{name: "accepted"},
		{name: "wrong api key", apiKey: "stale-key", wantField: crm.SecretNetHuntAPIKey},
		{name: "no e-mail", email: "-", wantField: crm.SecretNetHuntEmail},
		{name: "no api key", apiKey: "-", wantField: crm.SecretNetHuntAPIKey},
		{name: "unknown folder", cfg: config.CRM{FolderID: "f-gone"}, wantField: "folder_id"},
		{name: "status field missing", fields: with("status", "Статус"), wantField: "crm_fields.status"},
		{name: "phone field with another case", fields: with("phone", "phone"), wantField: "crm_fields.phone"},
		{name: "extra field missing", fields: with("city", "Місто"), wantField: "crm_fields.city"},
		{name: "not the Zapier API", cfg: config.CRM{BaseURL: "/api/v2"}, wantField: "base_url"},
		{name: "down", setup: func(nh *nethunttest.Server) { nh.SetStatus(503) }, wantDown: true},
		{name: "rate limited", setup: func(nh *nethunttest.Server) { nh.RateLimit(1, "5") }, wantDown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nh := nethunttest.New(t)
			if tt.setup != nil {
				tt.setup(nh)
			}
			cfg := tt.cfg
			cfg.Kind = "nethunt"
			cfg.FolderID = cmpOr(cfg.FolderID, nethunttest.Folder)
			cfg.BaseURL = nh.URL + cmpOr(cfg.BaseURL, nethunttest.Path)
			fields := defaultFields
			if tt.fields != nil {
				fields = tt.fields
			}
			email, key := cmpOr(tt.email, nethunttest.Email), cmpOr(tt.apiKey, nethunttest.APIKey)
			email, key = strings.TrimPrefix(email, "-"), strings.TrimPrefix(key, "-")
			err := crm.CheckNetHunt(t.Context(), cfg, fields, email, key, nh.Client())
			var setup *crm.SetupError
			switch {
			case tt.wantDown:
				if err == nil || errors.As(err, &setup) {
					t.Fatalf("CheckNetHunt = %v, want NetHunt unavailable", err)
				}
			case tt.wantField == "":
				if err != nil {
					t.Fatalf("CheckNetHunt = %v", err)
				}
			default:
				if !errors.As(err, &setup) || setup.Field != tt.wantField {
					t.Fatalf("CheckNetHunt = %v, want a SetupError naming %s", err, tt.wantField)
				}
			}
			if err != nil && (strings.Contains(err.Error(), "Unauthorized") || strings.Contains(err.Error(), "Folder not found")) {
				t.Errorf("error %q quotes NetHunt's answer", err)
			}
		})
	}
}
