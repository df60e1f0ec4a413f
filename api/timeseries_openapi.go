package api

// The admin API's description of the timeseries the console draws
// (contract §10).

func init() {
	count := obj{"type": "integer", "minimum": 0}
	series := obj{"type": "object", "required": []string{"step", "points"}, "properties": obj{
		"step": obj{"type": "string", "pattern": stepPattern.String(), "description": "The width of each point's bucket."},
		"points": obj{"type": "array", "maxItems": MaxTimeseriesPoints, "items": obj{"type": "object",
			"required": []string{"t", "dials", "byOutcome", "active", "queued"}, "properties": obj{
				"t":     obj{"type": "string", "format": "date-time", "description": "The bucket's start."},
				"dials": obj{"allOf": []obj{count}, "description": "Dials (attempts) started in the bucket."},
				"byOutcome": obj{"type": "object", "additionalProperties": count,
					"description": "Those dials by how they ended; a dial still live is in none."},
				"active": obj{"allOf": []obj{count}, "description": "Calls holding a slot at the bucket's end (now, for the bucket under way)."},
				"queued": obj{"allOf": []obj{count}, "description": "Calls waiting for their first dial at the bucket's end."}}}}}}
	query := []obj{
		{"name": "from", "in": "query", "description": "Start of the first point (default: an hour before to).",
			"schema": obj{"type": "string", "format": "date-time"}},
		{"name": "to", "in": "query", "description": "End of the last point (default: now). Points after now are left out.",
			"schema": obj{"type": "string", "format": "date-time"}},
		{"name": "step", "in": "query", "description": "A whole number of s, m, h or d (default: the finest of 1m, 5m, 15m, 1h, 6h, 1d " +
			"that gives at most 1,440 points).", "schema": obj{"type": "string", "pattern": stepPattern.String()}},
	}
	example := obj{"step": "1m", "points": []obj{
		{"t": "2026-01-21T12:00:00Z", "dials": 3, "byOutcome": obj{"answered": 2, "no_answer": 1}, "active": 2, "queued": 14},
		{"t": "2026-01-21T12:01:00Z", "dials": 2, "byOutcome": obj{"answered": 1}, "active": 3, "queued": 12}}}
	description := "Without from, to and step: the last hour by minute, the last point the minute under way. " +
		"400 names the parameter that is malformed, or that makes more than 1,440 points."
	adminDocs["GET /api/integrations/{id}/timeseries"] = opDoc{summary: "An integration's calls over time", tag: "Calls",
		description: description, query: query, response: series, example: example, errors: []int{400, 404}}
	adminDocs["GET /api/campaigns/{id}/timeseries"] = opDoc{summary: "A campaign's calls over time", tag: "Campaigns",
		description: description, query: query, response: series, example: example, errors: []int{400, 404}}
}
