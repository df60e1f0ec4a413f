package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/webhooks"
)

// OpenAPIPath serves the admin API's own OpenAPI 3.1 description. It needs
// no token, like any API description tools load.
const OpenAPIPath = "/api/openapi.json"

// DocsPath renders the admin API's description for people (web/apidocs).
const DocsPath = "/api/docs"

type obj = map[string]any

func schemaRef(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

// opDoc documents one route of the admin API.
type opDoc struct {
	summary     string
	description string
	tag         string
	query       []obj // query parameters
	body        obj   // request body schema
	bodyExample any
	status      int // success status (200 when 0)
	response    obj // success body schema
	example     any // success body example
	// errors are the statuses besides 401, 429 and 503 (which every route can answer).
	errors []int
	// totalCount: the answer carries X-Total-Count.
	totalCount bool
}

var (
	exIntegrationID = "550e8400-e29b-41d4-a716-446655440000"
	exIntegration   = obj{ //nolint:gosec // G101: an example value in the API docs
		"id": exIntegrationID, "name": "telegram", "slug": "telegram", "ownerId": "user-id-uuid", "status": "not_configured",
		"webhookToken": "wh_3mJ0b7Yc9rZL1qkQ2WfA8sXn5TgVh4Ue", "agentPrompt": "You are a helpful assistant...",
		"elevenLabsAgentId": "agent_abc123", "saasAssistantName": "My Assistant", "phoneNumber": "+1234567890",
		"voiceAssistantSipId": "1", "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
	}
	exSecret  = obj{"id": "7d9f8a52-3c1b-4e2a-9f6d-0b1c2d3e4f50", "key": "VA_AUTH_TOKEN", "valuePreview": "sk-…89", "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z"}
	exHandler = obj{"id": "0f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19", "integrationId": exIntegrationID, "name": "call-originate",
		"defaultArgs": obj{"dynamic_variables": obj{"lead_source": "Facebook"}}, "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z"}
	exCall = obj{"id": "0194c9a2-7b1e-7c3d-9f10-2a3b4c5d6e7f", "integrationId": exIntegrationID, "phoneNumber": "+380994829573",
		"recordId": "rec-1024", "status": "completed", "priority": 0, "attempt": 1, "maxAttempts": 3, "nextRetryAt": nil,
		"externalCallId": "va-5521", "conversationId": "conv_xyz789", "durationSecs": 45, "outcome": "completed",
		"dynamicVariables": obj{"client_name": "Іван"}, "dialState": "accepted", "dataStore": "everything",
		"queuedAt": "2026-01-21T12:39:12Z", "createdAt": "2026-01-21T12:39:12Z", "updatedAt": "2026-01-21T12:40:30Z"}
	pageParams = []obj{
		{"name": "limit", "in": "query", "description": "1 to 1000 (default 50).", "schema": obj{"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
		{"name": "offset", "in": "query", "schema": obj{"type": "integer", "minimum": 0, "default": 0}},
	}
)

// adminDocs documents the admin API's routes by pattern. A route without
// an entry is still listed, with a generic description, and the tests
// insist on an entry.
var adminDocs = map[string]opDoc{
	"GET /api/integrations": {summary: "List integrations", tag: "Integrations", totalCount: true,
		query: append([]obj{
			{"name": "search", "in": "query", "description": "Part of the name or slug.", "schema": obj{"type": "string"}},
			{"name": "order", "in": "query", "schema": obj{"type": "string", "enum": []string{"name", "-name", "createdAt", "-createdAt"}}},
		}, pageParams...),
		response: obj{"type": "array", "items": schemaRef("Integration")}, example: []any{exIntegration}, errors: []int{400}},
	"POST /api/integrations": {summary: "Create an integration", tag: "Integrations", status: 201,
		body: schemaRef("IntegrationInput"), bodyExample: obj{"name": "telegram", "agentPrompt": "You are a helpful assistant...",
			"elevenLabsAgentId": "agent_abc123", "saasAssistantName": "My Assistant", "phoneNumber": "+1234567890", "voiceAssistantSipId": "1"},
		response: schemaRef("Integration"), example: exIntegration, errors: []int{400, 409, 413, 422}},
	"GET /api/integrations/{id}": {summary: "Get an integration", tag: "Integrations", response: schemaRef("Integration"),
		example: exIntegration, errors: []int{404}},
	"PATCH /api/integrations/{id}": {summary: "Change an integration", tag: "Integrations",
		description: "Fields not given are kept. status may be set to paused or active only.",
		body:        schemaRef("IntegrationInput"), bodyExample: obj{"name": "telegram-updated", "saasAssistantName": "Updated Assistant"},
		response: schemaRef("Integration"), example: exIntegration, errors: []int{400, 404, 409, 413, 422}},
	"PUT /api/integrations/{id}": {summary: "Replace an integration", tag: "Integrations",
		description: "Optional fields not given are cleared; name is required.",
		body:        schemaRef("IntegrationInput"), bodyExample: obj{"name": "telegram"},
		response: schemaRef("Integration"), example: exIntegration, errors: []int{400, 404, 409, 413, 422}},
	"DELETE /api/integrations/{id}": {summary: "Delete an integration", tag: "Integrations",
		description: "With its handlers, config, secrets and calls.", response: schemaRef("Success"), example: obj{"success": true}, errors: []int{404}},
	"POST /api/integrations/{id}/rotate-webhook-token": {summary: "Give an integration a new webhook token", tag: "Integrations",
		response: schemaRef("Integration"), example: exIntegration, errors: []int{404}},
	"GET /api/integrations/{id}/stats": {summary: "Count an integration's calls by status", tag: "Calls",
		response: schemaRef("Stats"), example: obj{"active": 1, "limit": 3, "queued": 4, "retryScheduled": 1, "waitingPostcall": 0,
			"completed": 12, "failed": 2, "cancelled": 0}, errors: []int{404}},

	"GET /api/integrations/{id}/config": {summary: "An integration's configuration", tag: "Config",
		description: "Every known key with its defaults filled in, and the free-form keys stored.",
		response:    obj{"type": "object", "additionalProperties": true}, example: obj{"call_handling": obj{"concurrency_limit": 3,
			"min_call_duration_secs": 5, "max_attempts": 3, "retry_delays_secs": []int{300, 900, 3600}, "max_call_duration_secs": 1800,
			"calling_window": nil}, "crm": obj{"kind": "none"}}, errors: []int{404}},
	"GET /api/integrations/{id}/config/{key}": {summary: "One configuration key", tag: "Config", response: obj{},
		example: obj{"provider": "va", "base_url": "https://va.example.com/api", "sip_id": "sip-1", "assistant_id": "asst-1"}, errors: []int{404}},
	"PUT /api/integrations/{id}/config/{key}": {summary: "Set one configuration key", tag: "Config",
		description: "Known keys (call_handling, voice, crm_fields, crm, agent) are validated and completed with defaults; other keys take any JSON. " +
			"The voice key's value is a VoiceConfig; a 422 names the field by its path in the value (caller_ids[3].number).",
		body: obj{}, bodyExample: obj{"concurrency_limit": 2, "calling_window": obj{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": []int{1, 2, 3, 4, 5}}},
		response: obj{}, errors: []int{400, 404, 413, 422}},
	"DELETE /api/integrations/{id}/config/{key}": {summary: "Restore a configuration key's default", tag: "Config",
		response: obj{}, errors: []int{404}},
	"GET /api/integrations/{id}/crm/fields": {summary: "The field names of the NetHunt folder, for crm_fields", tag: "Config",
		description: "Asked of NetHunt with the stored crm config and the NETHUNT_EMAIL and NETHUNT_API_KEY secrets. 409 when the CRM is not NetHunt; " +
			"422 names the secret or config field NetHunt refused; 503 when NetHunt does not answer.",
		response: obj{"type": "object", "required": []string{"fields"}, "properties": obj{"fields": obj{"type": "array", "items": obj{"type": "string"}}}},
		example:  obj{"fields": []string{"Name", "Phone", "Email", "Status"}}, errors: []int{404, 409, 422}},

	"POST /api/core/secrets": {summary: "Set a secret by integration name (seed 000)", tag: "Secrets", status: 201,
		description: "Creates the secret or replaces the value of the key.",
		body:        schemaRef("CoreSecretInput"), bodyExample: obj{"integration": "telegram", "key": "bot_token", "value": "your-bot-token"},
		response: schemaRef("Secret"), example: exSecret, errors: []int{400, 404, 413, 422}},
	"GET /api/core/secrets": {summary: "List secrets by integration name (seed 000)", tag: "Secrets",
		query:    []obj{{"name": "integration", "in": "query", "required": true, "description": "Slug or name.", "schema": obj{"type": "string"}}},
		response: obj{"type": "array", "items": schemaRef("Secret")}, example: []any{exSecret}, errors: []int{400, 404}},

	"GET /api/calls": {summary: "List calls", tag: "Calls",
		query: append([]obj{
			{"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}},
			{"name": "status", "in": "query", "schema": obj{"type": "string", "enum": callStatuses}},
			{"name": "outcome", "in": "query", "schema": obj{"type": "string", "enum": callstate.Outcomes}},
			{"name": "phone", "in": "query", "schema": obj{"type": "string"}},
			{"name": "order", "in": "query", "schema": obj{"type": "string", "enum": []string{"createdAt", "-createdAt"}}},
			{"name": "createdFrom", "in": "query", "schema": obj{"type": "string", "format": "date-time"}},
			{"name": "createdTo", "in": "query", "schema": obj{"type": "string", "format": "date-time"}},
		}, pageParams...),
		response: obj{"type": "array", "items": schemaRef("Call")}, example: []any{exCall}, errors: []int{400}},
	"GET /api/calls/{id}": {summary: "Get a call with its history", tag: "Calls", response: schemaRef("CallWithEvents"), errors: []int{404}},
	"POST /api/calls/{id}/cancel": {summary: "Cancel a call", tag: "Calls", description: "409 when the call has already ended.",
		response: schemaRef("Call"), example: exCall, errors: []int{404, 409}},

	"GET /api/handlers": {summary: "List handlers", tag: "Handlers",
		query: []obj{{"name": "integrationId", "in": "query", "description": "Only this integration's (all of yours when absent).",
			"schema": obj{"type": "string", "format": "uuid"}}},
		response: obj{"type": "array", "items": schemaRef("Handler")}, example: []any{exHandler}, errors: []int{400, 404}},
	"POST /api/handlers": {summary: "Create a handler", tag: "Handlers", status: 201,
		body: schemaRef("HandlerCreate"), bodyExample: obj{"integrationId": exIntegrationID, "name": "call-originate",
			"defaultArgs": obj{"dynamic_variables": obj{"lead_source": "Facebook"}}},
		response: schemaRef("Handler"), example: exHandler, errors: []int{400, 404, 409, 413, 422}},
	"GET /api/handlers/{id}": {summary: "Get a handler", tag: "Handlers", response: schemaRef("Handler"), example: exHandler, errors: []int{404}},
	"PATCH /api/handlers/{id}": {summary: "Change a handler", tag: "Handlers", description: "defaultArgs, when given, replaces the handler's.",
		body: schemaRef("HandlerInput"), bodyExample: obj{"defaultArgs": obj{"priority": 10}},
		response: schemaRef("Handler"), example: exHandler, errors: []int{400, 404, 409, 413, 422}},
	"DELETE /api/handlers/{id}": {summary: "Delete a handler", tag: "Handlers", response: schemaRef("Success"), example: obj{"success": true}, errors: []int{404}},
	"POST /api/handlers/{id}/invoke": {summary: "Run a handler", tag: "Handlers",
		description: "Runs the built-in named like the handler (" + strings.Join(webhooks.Builtins, ", ") + ") for its integration, " +
			"with defaultArgs overlaid by args (a JSON merge patch), and answers with the built-in's result: call-originate queues a " +
			"real call. A handler from sync-handlers ({method, url, body}) passes its body. Other names are a 422 unknown_handler. " +
			"An Idempotency-Key header is passed to call-originate. The handler options retries (0–20: repeats of a run that failed " +
			"with a 5xx or timed out) and timeout (ms per run, 504 when exceeded), at the top level of defaultArgs or args, steer the " +
			"run and are not passed to the built-in.",
		body: schemaRef("InvokeRequest"), bodyExample: obj{"args": obj{"phone_number": "+380994829573", "dynamic_variables": obj{"client_name": "Іван"}}},
		response: schemaRef("InvokeResult"), example: obj{"success": true, "handler": "call-originate",
			"result": obj{"success": true, "callId": "0194c9a2-7b1e-7c3d-9f10-2a3b4c5d6e7f"}}, errors: []int{400, 404, 413, 422, 503, 504}},
	"GET /api/integrations/{id}/handlers": {summary: "List an integration's handlers", tag: "Handlers",
		response: obj{"type": "array", "items": schemaRef("Handler")}, example: []any{exHandler}, errors: []int{404}},
	"POST /api/integrations/{id}/handlers": {summary: "Create a handler of an integration", tag: "Handlers", status: 201,
		body: schemaRef("HandlerInput"), bodyExample: obj{"name": "order-created", "defaultArgs": obj{"timeout": 5000}},
		response: schemaRef("Handler"), example: exHandler, errors: []int{400, 404, 409, 413, 422}},
	"PUT /api/integrations/{id}/handlers/{handlerId}": {summary: "Change a handler of an integration", tag: "Handlers",
		description: "Like PATCH /api/handlers/{id}: the fields given replace the handler's.",
		body:        schemaRef("HandlerInput"), bodyExample: obj{"defaultArgs": obj{"timeout": 10000}},
		response: schemaRef("Handler"), example: exHandler, errors: []int{400, 404, 409, 413, 422}},
	"DELETE /api/integrations/{id}/handlers/{handlerId}": {summary: "Delete a handler of an integration", tag: "Handlers",
		response: schemaRef("Success"), example: obj{"success": true}, errors: []int{404}},
	"POST /api/integrations/{id}/sync-handlers": {summary: "Create handlers from an OpenAPI document", tag: "Handlers",
		description: "Fetches {baseUrl}/{integrationName}/openapi.json (baseUrl defaults to this service) and creates or updates, by name, " +
			"one handler per path and method, in the order they appear. The body example comes from the JSON request body's example, " +
			"else its schema's example, else is built from the properties' examples or defaults. All or nothing: a document that " +
			"cannot be fetched is a 502, one that cannot be read a 422.",
		body: schemaRef("SyncRequest"), bodyExample: obj{"integrationName": "sofa", "baseUrl": "http://localhost:3001"},
		response: schemaRef("SyncResult"), example: obj{"success": true, "created": 2, "updated": 0, "handlers": []any{
			obj{"id": "handler-uuid-1", "name": "webinar-agent-init", "method": "POST", "url": "sofa/webhook/webinar-agent-init",
				"body": obj{"phone_number": "+380991234567"}, "order": 0},
			obj{"id": "handler-uuid-4", "name": "health", "method": "GET", "url": "sofa/health", "body": nil, "order": 1}}},
		errors: []int{400, 404, 413, 422, 502}},

	"GET /api/people/{phone}": {summary: "Everything stored about a person", tag: "People",
		description: "Right of access: the number's calls (with their history, transcripts, analyses and CRM updates) and " +
			"suppressions in your integrations, or in the one integrationId names, as one document (at most 1,000 calls; " +
			"truncated says when there are more).",
		query:    []obj{{"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}}},
		response: obj{"type": "object"}, example: obj{"phoneNumber": "+380994829573", "calls": []any{}, "suppressions": []any{}, "truncated": false},
		errors: []int{400, 404}},
	"DELETE /api/people/{phone}": {summary: "Erase a person", tag: "People",
		description: "Right to erasure: deletes the number's calls with their history, attempts, parked events, CRM updates and " +
			"analyses, in your integrations or the one integrationId names. A suppression of the number survives as a keyed " +
			"hash: the number is still never dialled, and the suppressions list shows the entry as erased. The audit entry " +
			"names no number. 409 while a call to the number is in progress.",
		query:    []obj{{"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}}},
		response: obj{"type": "object"}, example: obj{"erased": obj{"calls": 2, "events": 14, "attempts": 3, "crmUpdates": 2,
			"analyses": 0, "parkedEvents": 0, "idempotencyKeys": 1, "suppressions": 1}},
		errors: []int{400, 404, 409}},

	"GET /api/integrations/{id}/audit-logs": {summary: "An integration's audit log", tag: "Audit", totalCount: true,
		description: "Who changed what and when, newest first; secret values never appear.", query: pageParams,
		response: obj{"type": "array", "items": schemaRef("AuditEntry")}, errors: []int{400, 404}},
	"GET /api/audit-logs": {summary: "Your audit log", tag: "Audit", totalCount: true,
		description: "All of your changes, newest first, including deleted integrations' and tokens'. " +
			"integrationId narrows it to one integration, a deleted one too: the log is append-only.",
		query:    append([]obj{{"name": "integrationId", "in": "query", "schema": obj{"type": "string", "format": "uuid"}}}, pageParams...),
		response: obj{"type": "array", "items": schemaRef("AuditEntry")}, errors: []int{400}},
	"GET /api/tokens": {summary: "Your access tokens", tag: "Tokens", description: "Revoked ones included, newest first; never the token itself.",
		response: obj{"type": "array", "items": schemaRef("AccessToken")}},
	"DELETE /api/tokens/{id}": {summary: "Revoke an access token", tag: "Tokens", response: schemaRef("Success"),
		example: obj{"success": true}, errors: []int{404}},

	"GET " + OpenAPIPath: {summary: "This document", tag: "Documentation", response: obj{"type": "object"}},
	"GET " + DocsPath: {summary: "This document, for people", tag: "Documentation", response: obj{"type": "string"},
		description: "An HTML page that renders this document; it loads nothing from the internet."},
}

func init() {
	for _, kind := range []string{"secret", "credential"} {
		base := "/api/integrations/{id}/" + kind + "s"
		input := obj{"type": "object", "required": []string{"key", "value"}, "additionalProperties": false, "properties": obj{
			"key": obj{"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}, "value": obj{"type": "string", "maxLength": 65536}}}
		example := obj{"key": "VA_AUTH_TOKEN", "value": "sk-live-2f9a…"}
		adminDocs["GET "+base] = opDoc{summary: "List an integration's " + kind + "s", tag: "Secrets",
			description: "Values are never shown, only a preview.", response: obj{"type": "array", "items": schemaRef("Secret")},
			example: []any{exSecret}, errors: []int{404}}
		adminDocs["POST "+base] = opDoc{summary: "Add a " + kind, tag: "Secrets", status: 201, body: input, bodyExample: example,
			response: schemaRef("Secret"), example: exSecret, errors: []int{400, 404, 409, 413, 422}}
		adminDocs["PUT "+base+"/{secretId}"] = opDoc{summary: "Replace a " + kind, tag: "Secrets", body: input, bodyExample: example,
			response: schemaRef("Secret"), example: exSecret, errors: []int{400, 404, 409, 413, 422}}
		adminDocs["DELETE "+base+"/{secretId}"] = opDoc{summary: "Delete a " + kind, tag: "Secrets",
			response: schemaRef("Success"), example: obj{"success": true}, errors: []int{404}}
	}
}

var callStatuses = []string{"queued", "initiated", "in_progress", "waiting_postcall", "completed", "retry_scheduled", "failed", "cancelled"}

// errorExamples are one realistic error per status.
var errorExamples = map[int][3]string{
	400: {"The body or query is not what the route reads.", "bad_request", "limit must be an integer from 1 to 1000"},
	401: {"Missing, unknown or revoked token.", "unauthorized", "missing or invalid credentials"},
	404: {"Not found, or another owner's.", "not_found", "not found"},
	409: {"Conflicts with what exists.", "conflict", `slug "telegram" is taken`},
	413: {"The body is over 1 MiB.", "body_too_large", "body exceeds 1048576 bytes"},
	422: {"Valid JSON with a value that is not.", "invalid_value", "name is required"},
	429: {"Too many requests from this address or token; retry after Retry-After seconds.", "rate_limited", "too many requests; retry after 1 s"},
	502: {"The OpenAPI document could not be fetched.", "spec_unavailable", "http://localhost:3001/sofa/openapi.json answered 404"},
	503: {"A dependency is down; retry later.", "unavailable", "database is unavailable; retry later"},
	504: {"The handler did not finish within its timeout option.", "handler_timeout", "the handler did not finish within its timeout of 5000 ms"},
}

var pathParam = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// OpenAPI is the admin API's OpenAPI 3.1 document: every route Register
// added, served from base.
func (a *API) OpenAPI(base string) map[string]any {
	paths := webhooks.Object{}
	index := map[string]int{}
	for _, pattern := range a.patterns {
		method, path, _ := strings.Cut(pattern, " ")
		d, ok := adminDocs[pattern]
		if !ok {
			d = opDoc{summary: pattern, response: obj{}}
		}
		op := obj{"summary": d.summary, "operationId": operationID(method, path), "tags": []string{cmpOr(d.tag, "Other")}}
		if d.description != "" {
			op["description"] = d.description
		}
		var params []obj
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			schema := obj{"type": "string", "format": "uuid"}
			if m[1] == "key" {
				schema = obj{"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$"}
			}
			if m[1] == "phone" {
				schema = obj{"type": "string", "description": "E.164, URL-encoded (%2B380991234567)"}
			}
			params = append(params, obj{"name": m[1], "in": "path", "required": true, "schema": schema})
		}
		params = append(params, d.query...)
		if len(params) > 0 {
			op["parameters"] = params
		}
		if d.body != nil {
			media := obj{"schema": d.body}
			if d.bodyExample != nil {
				media["example"] = d.bodyExample
			}
			op["requestBody"] = obj{"required": true, "content": obj{"application/json": media}}
		}
		status := d.status
		if status == 0 {
			status = http.StatusOK
		}
		media := obj{"schema": d.response}
		if d.example != nil {
			media["example"] = d.example
		}
		success := obj{"description": http.StatusText(status), "content": obj{"application/json": media}}
		if d.totalCount {
			success["headers"] = obj{"X-Total-Count": obj{"description": "How many there are in all.", "schema": obj{"type": "integer"}}}
		}
		responses := obj{strconv.Itoa(status): success}
		codes := append([]int{401, 429, 503}, d.errors...)
		if pattern == "GET "+OpenAPIPath || pattern == "GET "+DocsPath {
			op["security"] = []obj{}
			codes = nil
		}
		if pattern == "GET "+DocsPath {
			success["content"] = obj{"text/html": obj{"schema": obj{"type": "string"}}}
		}
		for _, c := range codes {
			responses[strconv.Itoa(c)] = obj{"$ref": "#/components/responses/E" + strconv.Itoa(c)}
		}
		op["responses"] = responses
		i, seen := index[path]
		if !seen {
			i = len(paths)
			index[path] = i
			paths = append(paths, webhooks.Member{Key: path, Value: obj{}})
		}
		paths[i].Value.(obj)[strings.ToLower(method)] = op
	}
	errResponses := obj{}
	for code, e := range errorExamples {
		errResponses["E"+strconv.Itoa(code)] = obj{"description": e[0], "content": obj{"application/json": obj{
			"schema": schemaRef("Error"), "example": obj{"error": obj{"code": e[1], "message": e[2]}}}}}
	}
	errResponses["E429"].(obj)["headers"] = obj{"Retry-After": webhooks.RetryAfterHeader}
	return obj{
		"openapi": "3.1.0",
		"info": obj{"title": "callqueue admin API", "version": "1",
			"description": "Integrations, their configuration, secrets and handlers, and the calls, scoped to the owner of the bearer " +
				"token: another owner's resource is a 404. Errors are always {\"error\": {code, message, field?}}. " +
				"Per-integration endpoints are described at /{slug}/openapi.json."},
		"servers":    []obj{{"url": base}},
		"security":   []obj{{"bearerAuth": []string{}}},
		"paths":      paths,
		"components": obj{"securitySchemes": obj{"bearerAuth": obj{"type": "http", "scheme": "bearer", "description": "An access token (callqueue token create)."}}, "responses": errResponses, "schemas": adminSchemas()},
	}
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(strings.TrimPrefix(path, "/api"), func(r rune) bool { return r == '/' || r == '-' || r == '{' || r == '}' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func adminSchemas() obj {
	str := obj{"type": "string"}
	nullStr := obj{"type": []string{"string", "null"}}
	ts := obj{"type": "string", "format": "date-time"}
	nullTS := obj{"type": []string{"string", "null"}, "format": "date-time"}
	id := obj{"type": "string", "format": "uuid"}
	object := obj{"type": "object", "additionalProperties": true}
	nullObject := obj{"type": []string{"object", "null"}, "additionalProperties": true}
	count := obj{"type": "integer", "minimum": 0}
	integrationFields := obj{
		"name": obj{"type": "string", "minLength": 1, "maxLength": 200}, "slug": obj{"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
		"status":            obj{"type": "string", "enum": []string{"paused", "active"}},
		"agentPrompt":       nullStr,
		"elevenLabsAgentId": obj{"type": []string{"string", "null"}, "maxLength": 255}, "saasAssistantName": obj{"type": []string{"string", "null"}, "maxLength": 255},
		"phoneNumber": obj{"type": []string{"string", "null"}, "maxLength": 50}, "voiceAssistantSipId": obj{"type": []string{"string", "null"}, "maxLength": 50},
	}
	return obj{
		"Error": obj{"type": "object", "required": []string{"error"}, "additionalProperties": false, "properties": obj{
			"error": obj{"type": "object", "required": []string{"code", "message"}, "additionalProperties": false, "properties": obj{
				"code": obj{"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}, "message": str,
				"field": obj{"type": "string", "description": "JSON path of the field at fault, when one is."}}}}},
		"Success": obj{"type": "object", "required": []string{"success"}, "properties": obj{"success": obj{"type": "boolean", "const": true}}},
		"Integration": obj{"type": "object", "required": []string{"id", "name", "slug", "ownerId", "status", "webhookToken", "createdAt", "updatedAt"},
			"properties": obj{"id": id, "name": str, "slug": str, "ownerId": str,
				"status":       obj{"type": "string", "enum": []string{"not_configured", "active", "paused", "has_errors", "failed"}},
				"webhookToken": obj{"type": "string", "description": "Authenticates the integration's webhooks."},
				"agentPrompt":  nullStr, "elevenLabsAgentId": nullStr, "saasAssistantName": nullStr, "phoneNumber": nullStr,
				"voiceAssistantSipId": nullStr, "createdAt": ts, "updatedAt": ts}},
		"IntegrationInput": obj{"type": "object", "properties": integrationFields},
		"Secret": obj{"type": "object", "required": []string{"id", "key", "valuePreview", "createdAt", "updatedAt"}, "properties": obj{
			"id": id, "key": str, "valuePreview": obj{"type": "string", "description": "Enough to recognise it: sk-…89. Never the value."},
			"createdAt": ts, "updatedAt": ts}},
		"VoiceConfig": obj{"type": "object", "description": "The voice config key (PUT /api/integrations/{id}/config/voice).", "properties": obj{
			"provider": obj{"type": "string", "enum": []string{"va", "elevenlabs", "simulator"}}, "base_url": str, "sip_id": str,
			"assistant_id": str, "agent_id": str, "agent_phone_number_id": str, "via": obj{"type": "string", "enum": []string{"sip_trunk", "twilio"}},
			"ring_timeout_secs": obj{"type": "integer", "minimum": 0, "maximum": config.RingTimeoutMax},
			"caller_ids": obj{"type": "array", "maxItems": config.CallerIDsMax, "items": schemaRef("CallerID"),
				"description": "The numbers dials are made from; each dial takes one by caller_id_strategy, never one at any of its own limits."},
			"caller_id_strategy": obj{"type": "string", "enum": config.CallerIDStrategies, "default": "local"},
			"rotate_on_retry":    obj{"type": "boolean", "description": "A retry prefers a number the recipient has not been dialled from."}}},
		"CallerID": obj{"type": "object", "required": []string{"number"}, "additionalProperties": false, "properties": obj{
			"number":                obj{"type": "string", "description": "E.164, with its country code; unique in the pool.", "example": "+14155550100"},
			"sip_id":                obj{"type": "string", "maxLength": 128, "description": "The VA trunk of the number (else voice.sip_id)."},
			"agent_phone_number_id": obj{"type": "string", "maxLength": 128, "description": "ElevenLabs' id of the number (else voice.agent_phone_number_id)."},
			"concurrency_limit":     obj{"type": "integer", "minimum": 1, "maximum": config.CallerConcurrencyMax},
			"per_second":            obj{"type": "number", "minimum": config.CallerPerSecondMin, "maximum": config.CallerPerSecondMax},
			"max_per_hour":          obj{"type": "integer", "minimum": 1, "maximum": config.CallerMaxPerHourMax, "description": "Dials in any rolling hour."},
			"max_per_day":           obj{"type": "integer", "minimum": 1, "maximum": config.CallerMaxPerDayMax, "description": "Dials in any rolling 24 hours."}}},
		"CoreSecretInput": obj{"type": "object", "required": []string{"integration", "key", "value"}, "additionalProperties": false, "properties": obj{
			"integration": obj{"type": "string", "description": "The integration's slug or name."},
			"key":         obj{"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}, "value": obj{"type": "string", "maxLength": 65536}}},
		"Call": obj{"type": "object", "required": []string{"id", "integrationId", "phoneNumber", "status", "attempt", "maxAttempts"}, "properties": obj{
			"id": id, "integrationId": id, "phoneNumber": str, "recordId": nullStr,
			"status":   obj{"type": "string", "enum": callStatuses},
			"priority": obj{"type": "integer"}, "attempt": count, "maxAttempts": count, "nextRetryAt": nullTS,
			"externalCallId": nullStr, "conversationId": nullStr, "durationSecs": obj{"type": []string{"number", "null"}},
			"outcome": nullStr, "summary": nullStr, "dynamicVariables": object, "transcript": obj{}, "analysis": obj{}, "metadata": obj{},
			"dialState": str, "traceId": nullStr, "queuedAt": ts, "slotTakenAt": nullTS, "createdAt": ts, "updatedAt": ts,
			"dataStore": obj{"type": "string", "enum": []string{"everything", "no_content", "minimal"},
				"description": "The data.store mode the call's content was stored under."},
			"callerId": obj{"type": "string", "description": "The caller number (voice.caller_ids) its current attempt was dialled from; absent without a pool."}}},
		"CallWithEvents": obj{"allOf": []obj{schemaRef("Call"), {"type": "object", "properties": obj{
			"attempts": obj{"type": "array", "description": "The call's dials, first first.", "items": obj{"type": "object", "properties": obj{
				"attempt": count, "startedAt": ts, "endedAt": nullTS, "outcome": nullStr, "durationSecs": obj{"type": []string{"number", "null"}},
				"externalCallId": nullStr, "conversationId": nullStr,
				"callerId": obj{"type": []string{"string", "null"}, "description": "The caller number it was dialled from (voice.caller_ids)."}}}},
			"events": obj{"type": "array", "description": "The call's history, oldest first.", "items": obj{"type": "object", "properties": obj{
				"id": obj{"type": "integer"}, "attempt": count, "kind": str, "fromStatus": nullStr, "toStatus": nullStr, "detail": object,
				"traceId": nullStr, "occurredAt": ts}}},
			"crm": obj{"type": "array", "description": "The call's CRM updates and their delivery.", "items": obj{"type": "object", "properties": obj{
				"event": str, "status": obj{"type": "string", "enum": []string{"pending", "delivered", "failed", "no_record"},
					"description": "no_record: the CRM has no record for the call's phone (or several); kept, not retried."},
				"attempts": count, "lastError": nullStr, "nextAttemptAt": nullTS, "deliveredAt": nullTS}}},
		}}}},
		"Stats": obj{"type": "object", "properties": obj{"active": count, "limit": count, "queued": count, "retryScheduled": count,
			"waitingPostcall": count, "completed": count, "failed": count, "cancelled": count}},
		"Handler": obj{"type": "object", "required": []string{"id", "integrationId", "name", "defaultArgs", "createdAt", "updatedAt"}, "properties": obj{
			"id": id, "integrationId": id, "name": str, "defaultArgs": object, "createdAt": ts, "updatedAt": ts}},
		"HandlerInput": obj{"type": "object", "properties": obj{
			"name":        obj{"type": "string", "pattern": handlerNamePattern.String()},
			"defaultArgs": nullObject}},
		"HandlerCreate": obj{"type": "object", "required": []string{"integrationId", "name"}, "properties": obj{
			"integrationId": id, "name": obj{"type": "string", "pattern": handlerNamePattern.String()}, "defaultArgs": nullObject}},
		"InvokeRequest": obj{"type": "object", "additionalProperties": false, "properties": obj{
			"args": obj{"type": []string{"object", "null"}, "description": "Overlaid on the handler's defaultArgs.", "additionalProperties": true}}},
		"InvokeResult": obj{"type": "object", "required": []string{"success", "handler", "result"}, "properties": obj{
			"success": obj{"type": "boolean", "const": true}, "handler": str,
			"result": obj{"description": "The built-in's answer, as its endpoint gives it."}}},
		"SyncRequest": obj{"type": "object", "required": []string{"integrationName"}, "additionalProperties": false, "properties": obj{
			"integrationName": obj{"type": "string", "pattern": integrationNamePattern.String()},
			"baseUrl":         obj{"type": "string", "format": "uri", "description": "Defaults to this service's own URL."}}},
		"SyncResult": obj{"type": "object", "required": []string{"success", "created", "updated", "handlers"}, "properties": obj{
			"success": obj{"type": "boolean", "const": true}, "created": count, "updated": count,
			"handlers": obj{"type": "array", "items": obj{"type": "object", "required": []string{"id", "name", "method", "url", "body", "order"},
				"properties": obj{"id": str, "name": str, "method": str, "url": str, "body": obj{"description": "The request body example, or null."},
					"order": count}}}}},
		"AuditEntry": obj{"type": "object", "properties": obj{"id": obj{"type": "integer"}, "integrationId": obj{"type": []string{"string", "null"}},
			"actor": str, "tokenId": nullStr, "clientIp": nullStr, "action": str, "resource": str, "resourceId": nullStr,
			"before": obj{}, "after": obj{}, "createdAt": ts}},
		"AccessToken": obj{"type": "object", "properties": obj{"id": id, "ownerId": str, "name": str, "createdAt": ts,
			"lastUsedAt": nullTS, "revokedAt": nullTS}},
	}
}

func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := json.MarshalIndent(a.OpenAPI(webhooks.BaseURL(r)), "", "  ")
	if err != nil {
		jsonhttp.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(doc)
}
