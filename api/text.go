package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/callqueue/callqueue/jsonhttp"
)

// checkParams refuses (422, the parameter named) a path or query parameter
// holding text Postgres cannot store, before any handler reads it: every
// parameter may end up in a query or a row. Bodies are checked where they
// are decoded (jsonhttp.Decode, CSV uploads).
func checkParams(r *http.Request) error {
	for _, name := range wildcards(r.Pattern) {
		if err := jsonhttp.CheckString(name, r.PathValue(name)); err != nil {
			return err
		}
	}
	query := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(query)) {
		for _, v := range query[name] {
			if err := jsonhttp.CheckString(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// wildcards names the {wildcards} of a ServeMux pattern
// ("GET /api/integrations/{id}/config/{key}" → id, key).
func wildcards(pattern string) []string {
	var names []string
	for _, seg := range strings.Split(pattern, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name, _, _ = strings.Cut(strings.TrimSuffix(name, "}"), ".")
			names = append(names, name)
		}
	}
	return names
}
