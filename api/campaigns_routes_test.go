package api_test

import (
	"net/http"
	"testing"
)

func campaignBodyCases() []bodyCase {
	return []bodyCase{
		{name: "name of the wrong type", body: `{"name": 5}`, field: "name"},
		{name: "priority of the wrong type", body: `{"name": "x", "priority": "high"}`, field: "priority"},
		{name: "unknown field", body: `{"name": "x", "colour": "red"}`, field: "colour"},
	}
}

func campaignInvalidCases() []bodyCase {
	return []bodyCase{
		{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
		{name: "priority above 10", body: map[string]any{"name": "x", "priority": 11}, field: "priority"},
		{name: "concurrency limit zero", body: map[string]any{"name": "x", "concurrencyLimit": 0}, field: "concurrencyLimit"},
		{name: "startAt not a time", body: map[string]any{"name": "x", "startAt": "tomorrow"}, field: "startAt"},
		{name: "window zone", body: map[string]any{"name": "x", "callingWindow": map[string]any{"timezone": "Mars/Base", "start": "09:00", "end": "20:00"}},
			field: "callingWindow.timezone"},
		{name: "window start", body: map[string]any{"name": "x", "callingWindow": map[string]any{"timezone": "recipient", "start": "9am", "end": "20:00"}},
			field: "callingWindow.start"},
		{name: "window not an object", body: map[string]any{"name": "x", "callingWindow": "mornings"}, field: "callingWindow"},
		{name: "max attempts zero", body: map[string]any{"name": "x", "maxAttempts": 0}, field: "maxAttempts"},
	}
}

// expectCreated checks owner B made a thing of its own.
func expectCreated(t *testing.T, _ *routeFixture, r response) {
	t.Helper()
	r.expect(t, http.StatusCreated)
}

func campaignRows() []routeRow {
	return []routeRow{
		{
			pattern: "POST /api/integrations/{id}/campaigns",
			body:    map[string]any{"name": "Route probe campaign"},
			bad:     campaignBodyCases(),
			invalid: append(campaignInvalidCases(), bodyCase{name: "no name", body: map[string]any{"priority": 3}, field: "name"}),
		},
		{
			pattern: "GET /api/campaigns",
			other:   expectEmptyList,
			bad: append(pageCases(),
				bodyCase{name: "status", query: "status=finished", field: "status"},
				bodyCase{name: "integrationId", query: "integrationId=42", field: "integrationId"}),
		},
		{pattern: "GET /api/campaigns/{id}"},
		{
			pattern: "PATCH /api/campaigns/{id}",
			body:    map[string]any{"priority": 6},
			bad:     append(campaignBodyCases(), bodyCase{name: "recipients", body: `{"recipients": []}`, field: "recipients"}),
			invalid: campaignInvalidCases(),
		},
		// The upload's bodies (JSON arrays, CSV, up to 10,000 rows) are
		// checked in TestCampaignUpload.
		{pattern: "POST /api/campaigns/{id}/recipients"},
		{pattern: "POST /api/campaigns/{id}/pause"},
		{pattern: "POST /api/campaigns/{id}/resume"},
		{pattern: "POST /api/campaigns/{id}/cancel"},
		{pattern: "GET /api/campaigns/{id}/calls.csv"},
		{pattern: "GET /api/campaigns/{id}/timeseries", bad: timeseriesCases()},
		{pattern: "GET /api/integrations/{id}/suppressions", bad: pageCases()},
		// Suppression bodies (one, a list, CSV) are checked in TestSuppressions.
		{pattern: "POST /api/integrations/{id}/suppressions"},
		{pattern: "DELETE /api/integrations/{id}/suppressions/{phone}"},
		{pattern: "GET /api/suppressions", other: expectNoneOfA, bad: pageCases()},
		{
			pattern:   "POST /api/suppressions",
			otherBody: map[string]any{"phoneNumber": "+380997770004"},
			other:     expectCreated,
		},
		{pattern: "DELETE /api/suppressions/{phone}"},
	}
}
