package api

// The admin API's description of campaigns and suppressions (contract §6, §7).

func init() {
	progress := obj{"type": "object", "properties": obj{"total": obj{"type": "integer"}, "queued": obj{"type": "integer"},
		"active": obj{"type": "integer"}, "retryScheduled": obj{"type": "integer"}, "waitingPostcall": obj{"type": "integer"},
		"completed": obj{"type": "integer"}, "failed": obj{"type": "integer"}, "cancelled": obj{"type": "integer"},
		"suppressed": obj{"type": "integer"}}}
	campaign := obj{"type": "object", "properties": obj{
		"id": obj{"type": "string", "format": "uuid"}, "integrationId": obj{"type": "string", "format": "uuid"},
		"name": obj{"type": "string"}, "status": obj{"type": "string", "enum": []string{"scheduled", "running", "paused", "completed", "cancelled"}},
		"concurrencyLimit": obj{"type": []string{"integer", "null"}}, "priority": obj{"type": "integer", "minimum": 1, "maximum": 10},
		"startAt": obj{"type": []string{"string", "null"}, "format": "date-time"}, "callingWindow": obj{}, "retryPolicy": obj{},
		"maxAttempts": obj{"type": []string{"integer", "null"}}, "progress": progress,
		"effective": obj{"type": "object", "description": "What is in force: the campaign's own values, else the integration's.",
			"properties": obj{"callingWindow": obj{"type": []string{"object", "null"}}, "retryPolicy": obj{"type": []string{"object", "null"}},
				"maxAttempts": obj{"type": "integer"}}},
		"createdAt": obj{"type": "string", "format": "date-time"}, "updatedAt": obj{"type": "string", "format": "date-time"}}}
	campaignInput := obj{"type": "object", "additionalProperties": false, "properties": obj{
		"name": obj{"type": "string", "maxLength": 200}, "concurrencyLimit": obj{"type": []string{"integer", "null"}, "minimum": 1, "maximum": 1000},
		"priority": obj{"type": "integer", "minimum": 1, "maximum": 10}, "startAt": obj{"type": []string{"string", "null"}, "format": "date-time"},
		"callingWindow": obj{"type": []string{"object", "null"}}, "retryPolicy": obj{"type": []string{"object", "null"}},
		"maxAttempts": obj{"type": []string{"integer", "null"}}, "recipients": obj{"type": "array", "items": obj{"type": "object"}}}}
	exCampaign := obj{"id": "0190f3c2-7c1e-7b7a-8f00-00000000c001", "integrationId": "0190f3c2-7c1e-7b7a-8f00-00000000a001", "name": "Webinar follow-up", "status": "running",
		"concurrencyLimit": 2, "priority": 5, "startAt": nil,
		"callingWindow": obj{"timezone": "recipient", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}},
		"retryPolicy":   nil, "maxAttempts": 4,
		"effective": obj{"callingWindow": obj{"timezone": "recipient", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}},
			"retryPolicy": nil, "maxAttempts": 4},
		"progress": obj{"total": 480, "queued": 300, "active": 2, "retryScheduled": 40,
			"waitingPostcall": 1, "completed": 120, "failed": 10, "cancelled": 5, "suppressed": 2},
		"createdAt": "2026-01-21T12:39:12Z", "updatedAt": "2026-01-21T12:39:12Z"}
	upload := obj{"type": "object", "properties": obj{"added": obj{"type": "integer"}, "duplicates": obj{"type": "integer"},
		"rejected": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"row": obj{"type": "integer"},
			"field": obj{"type": "string"}, "message": obj{"type": "string"}}}}}}
	suppression := obj{"type": "object", "properties": obj{"id": obj{"type": "string", "format": "uuid"},
		"integrationId": obj{"type": []string{"string", "null"}}, "phoneNumber": obj{"type": "string"}, "reason": obj{"type": "string"},
		"expiresAt": obj{"type": []string{"string", "null"}, "format": "date-time"}, "createdAt": obj{"type": "string", "format": "date-time"}}}
	suppressionInput := obj{"type": []string{"object", "array"}, "description": "One entry, an array of them, or text/csv " +
		"(phone_number,reason,expires_at)."}
	success := obj{"type": "object", "properties": obj{"success": obj{"type": "boolean"}}}

	for pattern, d := range map[string]opDoc{
		"POST /api/integrations/{id}/campaigns": {summary: "Create a campaign", tag: "Campaigns", status: 201,
			description: "callingWindow, retryPolicy and maxAttempts replace the integration's (each as a whole) for the campaign's calls; " +
				"recipients (at most what fits in 1 MiB) are added as by POST /api/campaigns/{id}/recipients.",
			body: campaignInput, bodyExample: obj{"name": "Webinar follow-up", "concurrencyLimit": 2, "maxAttempts": 4},
			response: campaign, example: exCampaign, errors: []int{400, 404, 413, 422}},
		"GET /api/campaigns": {summary: "List campaigns with their progress", tag: "Campaigns",
			query: append([]obj{{"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
				{"name": "status", "in": "query", "schema": obj{"type": "string"}}}, pageParams...),
			response: obj{"type": "array", "items": campaign}, errors: []int{400}},
		"GET /api/campaigns/{id}": {summary: "A campaign with its progress", tag: "Campaigns", response: campaign, example: exCampaign,
			errors: []int{404}},
		"PATCH /api/campaigns/{id}": {summary: "Change a campaign", tag: "Campaigns",
			description: "Applies to every dial that has not happened yet.", body: campaignInput, bodyExample: obj{"priority": 8},
			response: campaign, example: exCampaign, errors: []int{400, 404, 413, 422}},
		"POST /api/campaigns/{id}/recipients": {summary: "Add recipients", tag: "Campaigns",
			description: "A JSON array of {phoneNumber, recordId?, externalId?, timezone?, dynamicVariables?} or text/csv with a header " +
				"(phone_number; record_id, external_id, timezone optional; other columns become dynamic variables). At most 10,000 rows " +
				"(413 beyond). The same externalId, else the same number, is a duplicate and skipped.",
			body: obj{"type": "array", "items": obj{"type": "object"}}, bodyExample: []any{obj{"phoneNumber": "+380991234567", "externalId": "lead-1"}},
			response: upload, example: obj{"added": 1, "duplicates": 0, "rejected": []any{}}, errors: []int{400, 404, 409, 413, 422}},
		"POST /api/campaigns/{id}/pause": {summary: "Pause a campaign", tag: "Campaigns", description: "Nothing new is dialled; live calls finish.",
			response: campaign, example: exCampaign, errors: []int{404, 409}},
		"POST /api/campaigns/{id}/resume": {summary: "Resume a campaign", tag: "Campaigns", response: campaign, example: exCampaign,
			errors: []int{404, 409}},
		"POST /api/campaigns/{id}/cancel": {summary: "Cancel a campaign", tag: "Campaigns",
			description: "Every call not yet dialled is cancelled; live calls finish.", response: campaign, example: exCampaign, errors: []int{404, 409}},
		"GET /api/campaigns/{id}/calls.csv": {summary: "Export a campaign's calls as CSV", tag: "Campaigns",
			description: "phone_number, record_id, external_id, status, attempts, outcome, duration_secs, updated_at.",
			response:    obj{"type": "string"}, errors: []int{404}},
		"GET /api/integrations/{id}/suppressions": {summary: "An integration's suppressions (with the owner-wide ones)", tag: "Suppressions",
			query: pageParams, response: obj{"type": "array", "items": suppression}, errors: []int{400, 404}},
		"POST /api/integrations/{id}/suppressions": {summary: "Suppress numbers for an integration", tag: "Suppressions", status: 201,
			body: suppressionInput, bodyExample: obj{"phoneNumber": "+380991234567", "reason": "asked by email"},
			response: upload, errors: []int{400, 404, 413, 422}},
		"DELETE /api/integrations/{id}/suppressions/{phone}": {summary: "Lift an integration's suppression", tag: "Suppressions",
			response: success, example: obj{"success": true}, errors: []int{404}},
		"GET /api/suppressions": {summary: "Your owner-wide suppressions", tag: "Suppressions", query: pageParams,
			response: obj{"type": "array", "items": suppression}, errors: []int{400}},
		"POST /api/suppressions": {summary: "Suppress numbers for every integration", tag: "Suppressions", status: 201,
			body: suppressionInput, bodyExample: obj{"phoneNumber": "+380991234567"}, response: upload, errors: []int{400, 413, 422}},
		"DELETE /api/suppressions/{phone}": {summary: "Lift an owner-wide suppression", tag: "Suppressions",
			response: success, example: obj{"success": true}, errors: []int{404}},
	} {
		adminDocs[pattern] = d
	}
}
