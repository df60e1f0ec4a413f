package crm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/callqueue/callqueue/config"
)

// SetupError is a CRM configuration that the CRM itself refuses, naming
// what is at fault: a config field ("folder_id", "crm_fields.status") or
// a secret ("NETHUNT_API_KEY").
type SetupError struct {
	Field   string
	Message string
}

func (e *SetupError) Error() string { return e.Field + ": " + e.Message }

// CheckNetHunt asks NetHunt whether cfg can work: the credentials
// (triggers/auth-test), the folder, and every field name crm_fields maps
// (triggers/folder-field/{folder}). What NetHunt refuses is a
// *SetupError; NetHunt not answering is any other error. The answers'
// bodies are never quoted back.
func CheckNetHunt(ctx context.Context, cfg config.CRM, fields config.CRMFields, email, apiKey string, client *http.Client) error {
	n, err := netHuntToAsk(cfg, fields, email, apiKey, client)
	if err != nil {
		return err
	}
	if _, err := n.do(ctx, http.MethodGet, n.base+"/triggers/auth-test", nil); err != nil {
		switch status(err) {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &SetupError{Field: SecretNetHuntAPIKey, Message: "NetHunt refused the e-mail and API key (secrets " +
				SecretNetHuntEmail + ", " + SecretNetHuntAPIKey + ")"}
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			return &SetupError{Field: "base_url", Message: "no NetHunt Zapier API answers at this URL"}
		}
		return fmt.Errorf("nethunt auth-test: %w", err)
	}
	names, err := n.folderFieldNames(ctx)
	if err != nil {
		return err
	}
	ours := make([]string, 0, len(fields))
	for k := range fields {
		ours = append(ours, k)
	}
	slices.SortFunc(ours, func(a, b string) int {
		// phone and status first: without them nothing works.
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
	for _, k := range ours {
		if !slices.Contains(names, fields[k]) {
			return &SetupError{Field: "crm_fields." + k,
				Message: fmt.Sprintf("the NetHunt folder has no field %q (names are case-sensitive)", fields[k])}
		}
	}
	return nil
}

// NetHuntFieldNames lists the field names of the folder cfg names, as
// NetHunt spells them, for an operator choosing crm_fields. What NetHunt
// refuses is a *SetupError; NetHunt not answering is any other error.
func NetHuntFieldNames(ctx context.Context, cfg config.CRM, fields config.CRMFields, email, apiKey string, client *http.Client) ([]string, error) {
	n, err := netHuntToAsk(cfg, fields, email, apiKey, client)
	if err != nil {
		return nil, err
	}
	return n.folderFieldNames(ctx)
}

// netHuntToAsk is a client for the setup questions; missing secrets and a
// configuration the adapter cannot work with are a *SetupError.
func netHuntToAsk(cfg config.CRM, fields config.CRMFields, email, apiKey string, client *http.Client) (*netHunt, error) {
	switch {
	case email == "":
		return nil, &SetupError{Field: SecretNetHuntEmail, Message: "set this secret before using NetHunt"}
	case apiKey == "":
		return nil, &SetupError{Field: SecretNetHuntAPIKey, Message: "set this secret before using NetHunt"}
	}
	c, err := newNetHunt(cfg, fields, email, apiKey, client)
	if err != nil {
		var perm *PermanentError
		if errors.As(err, &perm) {
			return nil, &SetupError{Field: strings.TrimPrefix(strings.Fields(perm.Message)[0], "crm."), Message: perm.Message}
		}
		return nil, err
	}
	return c.(*netHunt), nil
}

// folderFieldNames asks NetHunt for the names of the folder's fields
// (triggers/folder-field/{folder}).
func (n *netHunt) folderFieldNames(ctx context.Context) ([]string, error) {
	body, err := n.do(ctx, http.MethodGet, n.base+"/triggers/folder-field/"+url.PathEscape(n.folderID), nil)
	if err != nil {
		switch status(err) {
		case http.StatusUnauthorized:
			return nil, &SetupError{Field: SecretNetHuntAPIKey, Message: "NetHunt refused the e-mail and API key (secrets " +
				SecretNetHuntEmail + ", " + SecretNetHuntAPIKey + ")"}
		case http.StatusNotFound, http.StatusForbidden, http.StatusBadRequest:
			return nil, &SetupError{Field: "folder_id", Message: "NetHunt has no folder with this id that the account can read"}
		}
		return nil, fmt.Errorf("nethunt folder-field: %w", err)
	}
	var folder []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &folder); err != nil {
		return nil, &SetupError{Field: "base_url", Message: "the answer at this URL is not NetHunt's list of folder fields"}
	}
	names := make([]string, 0, len(folder))
	for _, f := range folder {
		names = append(names, f.Name)
	}
	return names, nil
}

func rank(field string) int {
	switch field {
	case "phone":
		return 0
	case "status":
		return 1
	}
	return 2
}

// status is the HTTP status a CRM answered with, 0 when err is not one.
func status(err error) int {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return perm.Status
	}
	return 0
}
