package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/web/apidocs"
)

// BaseURL is the scheme and host the request was made to, as the client
// saw it (clientip: forwarded headers count only from trusted proxies).
func BaseURL(r *http.Request) string { return clientip.BaseURL(r) }

// document serves a per-integration page that needs no token: the
// integration must exist, nothing else.
func (h *Handler) document(name string, serve func(w http.ResponseWriter, r *http.Request, in Integration)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := http.StatusOK
		in, err := h.dir.Lookup(r.Context(), r.PathValue("slug"))
		switch {
		case errors.Is(err, store.ErrNotFound):
			code = http.StatusNotFound
			jsonhttp.WriteError(w, jsonhttp.Errorf(code, "not_found", "", "no integration %q", r.PathValue("slug")))
		case err != nil:
			h.log.Error().Err(err).Msg("integration lookup failed")
			code = http.StatusServiceUnavailable
			jsonhttp.WriteError(w, jsonhttp.Unavailable("database"))
		default:
			serve(w, r, in)
		}
		h.metrics.WebhookRequests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		h.metrics.WebhookDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request, in Integration) {
	doc, err := json.MarshalIndent(OpenAPI(in.Slug, BaseURL(r)), "", "  ")
	if err != nil {
		jsonhttp.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*") // public and read-only: API tools may load it
	_, _ = w.Write(doc)
}

// serveDocs renders ./openapi.json for people (web/apidocs): nothing is
// fetched from elsewhere, so it works where there is no internet access.
func (h *Handler) serveDocs(w http.ResponseWriter, _ *http.Request, in Integration) {
	apidocs.ServePage(w, in.Slug+" — callqueue API")
}

// Object is a JSON object that keeps its members in order; the OpenAPI
// documents use it for paths, whose order sync-handlers keeps.
type Object []Member

// Member is one member of an Object.
type Member struct {
	Key   string
	Value any
}

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		key, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type obj = map[string]any

func ref(kind, name string) obj { return obj{"$ref": "#/components/" + kind + "/" + name} }

func jsonContent(schema obj, example any) obj {
	media := obj{"schema": schema}
	if example != nil {
		media["example"] = example
	}
	return obj{"application/json": media}
}

func jsonResponse(description string, schema obj, example any) obj {
	return obj{"description": description, "content": jsonContent(schema, example)}
}

// errorResponses are the contract's errors an endpoint can answer, by status.
func errorResponses(codes ...int) obj {
	names := map[int]string{400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 413: "TooLarge", 422: "Invalid",
		429: "TooManyRequests", 503: "Unavailable"}
	out := obj{}
	// Every endpoint is rate limited (per integration and per address).
	for _, c := range append(codes, http.StatusTooManyRequests) {
		out[strconv.Itoa(c)] = ref("responses", names[c])
	}
	return out
}

// RetryAfterHeader documents the Retry-After header of a 429.
var RetryAfterHeader = obj{"description": "Seconds to wait before retrying.", "schema": obj{"type": "integer", "minimum": 1}}

func merge(a, b obj) obj {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// Realistic examples (contract §4, seed 002).
var (
	exampleOriginate = obj{"phone_number": "+380994829573", "record_id": "rec-1024",
		"dynamic_variables": obj{"client_name": "Іван", "webinar": "Продажі 2026"}, "priority": 0}
	exampleCallID    = "0194c9a2-7b1e-7c3d-9f10-2a3b4c5d6e7f"
	exampleCallEvent = obj{"eventType": "call_end", "callId": "call_abc123", "conversation_id": "conv_xyz789", "duration": 45}
	exampleVars      = obj{"today_is": "21.01.2026", "time": "14:39:12", "weekday": "Середа", "phone_number": "+380994829573",
		"client_name": "Іван", "company": "ТОВ Компанія", "lead_source": "Facebook", "call_id": exampleCallID}
	examplePostcall = obj{
		"type": "post_call_transcription", "event_timestamp": 1705845552,
		"data": obj{
			"agent_id": "agent_abc123", "conversation_id": "conv_xyz789", "status": "done",
			"transcript": []any{
				obj{"role": "agent", "message": "Привіт, Іван! Як справи?", "time_in_call_secs": 0},
				obj{"role": "user", "message": "Добре, дякую!", "time_in_call_secs": 2.5},
			},
			"metadata":                            obj{"call_duration_secs": 45, "termination_reason": "user_ended_call"},
			"analysis":                            obj{"call_successful": "yes", "transcript_summary": "Клієнт підтвердив участь у вебінарі"},
			"conversation_initiation_client_data": obj{"dynamic_variables": obj{"phone_number": "+380994829573", "call_id": exampleCallID}},
		},
	}
	exampleHealth = obj{"status": "ok", "checks": obj{
		"db": obj{"ok": true}, "queue": obj{"ok": true},
		"voice": obj{"ok": true, "provider": "va", "configured": true, "secret": true, "breaker": "closed", "status": "active"},
		"crm":   obj{"ok": true, "kind": "none", "breaker": "closed"},
	}}
	exampleSetup = obj{"success": true, "status": "not_configured", "created": []string{
		"config:call_handling", "config:voice", "config:crm_fields", "config:crm", "config:agent",
		"secret:VA_AUTH_TOKEN", "secret:ELEVENLABS_WEBHOOK_SECRET", "secret:LLM_API_KEY"}}
)

// tokenSecurity: the webhook token in any of its three places.
var tokenSecurity = []obj{{"webhookToken": []string{}}, {"bearerToken": []string{}}, {"queryToken": []string{}}}

// OpenAPI is the OpenAPI 3.1 document of one integration's endpoints,
// served from base (scheme://host).
func OpenAPI(slug, base string) map[string]any {
	str := func(description string) obj { return obj{"type": "string", "description": description} }
	success := obj{"type": "object", "required": []string{"success"}, "properties": obj{"success": obj{"type": "boolean", "const": true}}}
	op := func(id, summary, description string, extra obj) obj {
		return merge(obj{"operationId": id, "summary": summary, "description": description}, extra)
	}
	paths := Object{
		{"/webhook/call-originate", obj{"post": op("call-originate", "Queue an outbound call",
			"Stores the call in the queue and answers once it is durably stored. The call is dialled when the integration "+
				"has a free concurrency slot and its calling window is open. The same Idempotency-Key, or the same record_id and "+
				"phone_number within 24 hours, answers with the same callId and dials once.", obj{
				"tags": []string{"Webhooks"},
				"parameters": []obj{{"name": "Idempotency-Key", "in": "header", "required": false,
					"description": "Makes retries of this request safe: the same key answers with the same callId.",
					"schema":      obj{"type": "string", "maxLength": 200}, "example": "crm-rec-1024-attempt-1"}},
				"requestBody": obj{"required": true, "content": jsonContent(ref("schemas", "CallOriginateRequest"), exampleOriginate)},
				"responses": merge(obj{"202": jsonResponse("The call is queued.", ref("schemas", "CallOriginateResponse"),
					obj{"success": true, "callId": exampleCallID})}, errorResponses(400, 401, 404, 413, 422, 503)),
			})}},
		{"/webhook/call-events", obj{"post": op("call-events", "Report a call event from the Voice Assistant",
			"call_start/media_start mark the call in progress; call_end/media_end end it: shorter than min_call_duration_secs "+
				"schedules a retry, longer waits for the post-call webhook. callId may be callqueue's id or the dialler's own. "+
				"Duplicates are harmless.", obj{
				"tags":        []string{"Webhooks"},
				"requestBody": obj{"required": true, "content": jsonContent(ref("schemas", "CallEventRequest"), exampleCallEvent)},
				"responses": merge(obj{"202": jsonResponse("The event is stored.", ref("schemas", "Success"), obj{"success": true})},
					errorResponses(400, 401, 404, 413, 422, 503)),
			})}},
		{"/webhook/agent-init", obj{"post": op("agent-init", "Caller context for the voice agent",
			"Answers synchronously, within the agent's deadline, with ElevenLabs' conversation_initiation_client_data: date, "+
				"time and Ukrainian weekday in the integration's timezone, the CRM's fields for the caller and the call's own "+
				"dynamic_variables. It never fails the call: what is slow or missing is left out.", obj{
				"tags": []string{"Webhooks"},
				"requestBody": obj{"required": false, "content": jsonContent(ref("schemas", "AgentInitRequest"),
					obj{"phone_number": "+380994829573"})},
				"responses": merge(obj{"200": jsonResponse("The agent's dynamic variables.", ref("schemas", "ClientData"),
					obj{"type": "conversation_initiation_client_data", "dynamic_variables": exampleVars})},
					errorResponses(400, 401, 404, 413)),
			})}},
		{"/webhook/agent-postcall", obj{"post": op("agent-postcall", "ElevenLabs post-call webhook",
			"Takes post_call_transcription, post_call_audio or call_initiation_failure. When the integration has the "+
				"ELEVENLABS_WEBHOOK_SECRET secret, the ElevenLabs-Signature header is required "+
				"(t=<unix>,v0=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>, at most 30 minutes old); otherwise the webhook token. "+
				"Bodies up to 25 MiB. An authenticated body of another type, or one that cannot be read, is answered 200 "+
				"with ignored (unknown_type or malformed) and the field at fault, never 4xx: ElevenLabs disables a webhook "+
				"after repeated failures. A 503 means the queue could not store it: ElevenLabs sends it again only when "+
				"webhook retries are switched on in its settings.", obj{
				"tags":        []string{"Webhooks"},
				"security":    append([]obj{{"elevenLabsSignature": []string{}}}, tokenSecurity...),
				"requestBody": obj{"required": true, "content": jsonContent(ref("schemas", "PostcallWebhook"), examplePostcall)},
				"responses": merge(obj{"200": jsonResponse("The webhook is stored, or ignored.", ref("schemas", "PostcallAnswer"), obj{"success": true})},
					errorResponses(401, 404, 413, 503)),
			})}},
		{"/setup", obj{"post": op("setup", "Set the integration up",
			"Stores the default of every known config key not yet set, creates the placeholder secrets VA_AUTH_TOKEN, "+
				"ELEVENLABS_WEBHOOK_SECRET and LLM_API_KEY with empty values (listed for you to fill in; an empty value does not "+
				"count as configured) and refreshes the status. Running it again creates nothing.", obj{
				"tags": []string{"Lifecycle"},
				"requestBody": obj{"required": false, "content": jsonContent(obj{"type": "object",
					"description": "Nothing is read from the body."}, nil)},
				"responses": merge(obj{"200": jsonResponse("What setup created.", ref("schemas", "SetupResult"), exampleSetup)},
					errorResponses(400, 401, 404, 413, 503)),
			})}},
		{"/health", obj{"get": op("health", "Health of the integration",
			"The database, the queue, the dialler (configuration, secret, circuit breaker) and the CRM. 503 when any is not ok.", obj{
				"tags": []string{"Lifecycle"}, "security": []obj{},
				"responses": merge(obj{
					"200": jsonResponse("Everything is ok.", ref("schemas", "Health"), exampleHealth),
					"503": jsonResponse("Something is not ok; checks say what.", ref("schemas", "Health"), obj{"status": "degraded",
						"checks": obj{"db": obj{"ok": true}, "queue": obj{"ok": true}, "voice": obj{"ok": false, "provider": "va",
							"configured": false, "secret": false, "breaker": "closed", "status": "not_configured"},
							"crm": obj{"ok": true, "kind": "none", "breaker": "closed"}}}),
				}, errorResponses(404)),
			})}},
		{"/cron/trigger", obj{"post": op("cron-trigger", "Run the scheduled handlers now",
			"Runs the scheduled handlers (retry: due retries go back to the queue) now instead of at their next tick.", obj{
				"tags": []string{"Lifecycle"},
				"requestBody": obj{"required": false, "content": jsonContent(ref("schemas", "CronTriggerRequest"),
					obj{"handlerName": "retry"})},
				"responses": merge(obj{"200": jsonResponse("What ran.", ref("schemas", "CronTriggerResult"),
					obj{"success": true, "ran": []obj{{"handlerName": "retry", "requeued": 2}}})},
					errorResponses(400, 401, 404, 413, 422, 503)),
			})}},
		{"/openapi.json", obj{"get": op("openapi", "This document", "The OpenAPI 3.1 description of this integration's endpoints.", obj{
			"tags": []string{"Documentation"}, "security": []obj{},
			"responses": merge(obj{"200": jsonResponse("The OpenAPI document.", obj{"type": "object"}, nil)}, errorResponses(404)),
		})}},
		{"/docs", obj{"get": op("docs", "Documentation page", "A page that renders this document for people; it loads nothing from the internet.", obj{
			"tags": []string{"Documentation"}, "security": []obj{},
			"responses": merge(obj{"200": obj{"description": "An HTML page.", "content": obj{"text/html": obj{"schema": obj{"type": "string"}}}}},
				errorResponses(404)),
		})}},
	}
	errorSchema := obj{"type": "object", "required": []string{"error"}, "additionalProperties": false, "properties": obj{
		"error": obj{"type": "object", "required": []string{"code", "message"}, "additionalProperties": false, "properties": obj{
			"code":    obj{"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "snake_case reason"},
			"message": str("What went wrong, for people."),
			"field":   str("JSON path of the field at fault, when one is."),
		}},
	}}
	errorResponse := func(description, code, message, field string) obj {
		e := obj{"code": code, "message": message}
		if field != "" {
			e["field"] = field
		}
		return jsonResponse(description, ref("schemas", "Error"), obj{"error": e})
	}
	variables := obj{"type": "object", "description": "Variables passed to the voice agent.", "additionalProperties": true}
	return obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":   "callqueue integration " + slug,
			"version": "1",
			"description": "The endpoints of the callqueue integration `" + slug + "`: the four voice webhooks " +
				"(call-originate, call-events, agent-init, agent-postcall), setup, health and the scheduled handlers. " +
				"Webhooks authenticate with the integration's webhook token, given as `X-Webhook-Token`, " +
				"`Authorization: Bearer` or `?token=`. A webhook answers 2xx only once the event is durably stored.",
		},
		"servers":  []obj{{"url": base + "/" + slug, "description": "This integration"}},
		"security": tokenSecurity,
		"tags": []obj{
			{"name": "Webhooks", "description": "Called by your CRM, the Voice Assistant and ElevenLabs."},
			{"name": "Lifecycle", "description": "Setting the integration up and watching it."},
			{"name": "Documentation", "description": "This document and its page."},
		},
		"paths": paths,
		"components": obj{
			"securitySchemes": obj{
				"webhookToken": obj{"type": "apiKey", "in": "header", "name": "X-Webhook-Token",
					"description": "The integration's webhookToken (admin API)."},
				"bearerToken": obj{"type": "http", "scheme": "bearer", "description": "The webhook token as a bearer token."},
				"queryToken":  obj{"type": "apiKey", "in": "query", "name": "token", "description": "The webhook token in the query."},
				"elevenLabsSignature": obj{"type": "apiKey", "in": "header", "name": "ElevenLabs-Signature",
					"description": "t=<unix>,v0=<hex HMAC-SHA256(ELEVENLABS_WEBHOOK_SECRET, \"<t>.<raw body>\")>"},
			},
			"responses": obj{
				"BadRequest":   errorResponse("The body is not what the endpoint reads.", "bad_request", "body is not valid JSON", ""),
				"Unauthorized": errorResponse("Missing or wrong token (or signature).", "unauthorized", "missing or invalid credentials", ""),
				"NotFound":     errorResponse("No integration with this slug.", "not_found", "no integration \""+slug+"\"", ""),
				"TooLarge":     errorResponse("The body is too large.", "body_too_large", "body exceeds 1048576 bytes", ""),
				"Invalid": errorResponse("Valid JSON with a value that is not.", "invalid_value",
					"phone_number must be a phone number: an optional + and 5 to 20 digits", "phone_number"),
				"Unavailable": errorResponse("A dependency is down; nothing was stored. Retry later.", "unavailable",
					"queue is unavailable; retry later", ""),
				"TooManyRequests": merge(errorResponse("Too many requests for this integration or from this address; nothing was "+
					"stored. Retry after Retry-After seconds.", "rate_limited", "too many requests; retry after 1 s", ""),
					obj{"headers": obj{"Retry-After": RetryAfterHeader}}),
			},
			"schemas": obj{
				"Error":   errorSchema,
				"Success": success,
				"PostcallAnswer": obj{"type": "object", "required": []string{"success"}, "properties": obj{
					"success": obj{"type": "boolean", "const": true},
					"ignored": obj{"type": "string", "enum": []string{"unknown_type", "malformed"}, "description": "Why the body was set aside."},
					"field":   obj{"type": "string", "description": "The part of the body at fault."},
				}},
				"CallOriginateRequest": obj{"type": "object", "required": []string{"phone_number"}, "additionalProperties": false,
					"properties": obj{
						"phone_number":      obj{"type": "string", "description": "E.164-like: an optional + and 5 to 20 digits; spaces, dashes and brackets are ignored.", "example": "+380994829573"},
						"record_id":         obj{"type": []string{"string", "number", "null"}, "description": "The CRM record the call is about (at most 200 characters).", "example": "rec-1024"},
						"dynamic_variables": merge(obj{"example": obj{"client_name": "Іван"}}, variables),
						"priority":          obj{"type": "integer", "minimum": -100, "maximum": 100, "default": 0, "description": "Higher is dialled first."},
					}},
				"CallOriginateResponse": obj{"type": "object", "required": []string{"success", "callId"}, "properties": obj{
					"success": obj{"type": "boolean", "const": true},
					"callId":  obj{"type": "string", "format": "uuid", "description": "callqueue's id of the call."},
				}},
				"CallEventRequest": obj{"type": "object", "required": []string{"eventType", "callId"}, "properties": obj{
					"eventType":       obj{"type": "string", "enum": eventTypes},
					"callId":          obj{"type": []string{"string", "number"}, "description": "callqueue's call id or the dialler's own."},
					"conversation_id": obj{"type": []string{"string", "null"}, "description": "The agent's conversation id."},
					"duration":        obj{"type": []string{"number", "string", "null"}, "description": "Seconds, 0 to 86400 (call_end)."},
					"metadata":        obj{"type": []string{"object", "null"}},
				}},
				"AgentInitRequest": obj{"type": "object", "description": "Seed 002's {phone_number} or ElevenLabs' Twilio/SIP fields.",
					"properties": obj{
						"phone_number":  str("The client's phone number."),
						"caller_id":     str("ElevenLabs: the calling number."),
						"agent_id":      str("ElevenLabs: the agent."),
						"called_number": str("ElevenLabs: the called number."),
						"call_sid":      str("ElevenLabs: the telephony call id."),
					}},
				"ClientData": obj{"type": "object", "required": []string{"type", "dynamic_variables"}, "properties": obj{
					"type": obj{"type": "string", "const": "conversation_initiation_client_data"},
					"dynamic_variables": obj{"type": "object", "additionalProperties": true, "properties": obj{
						"today_is": str("dd.mm.yyyy in the integration's timezone."), "time": str("hh:mm:ss"),
						"weekday": str("Ukrainian weekday."), "phone_number": str("The caller."),
						"client_name": str("From the CRM (crm_fields.name)."), "company": str("From the CRM (crm_fields.company)."),
						"lead_source": str("From the CRM (crm_fields.source)."), "call_id": str("callqueue's id of the call."),
					}},
					"conversation_config_override": obj{"type": "object", "description": "When the agent config asks for it: prompt, first_message, language."},
				}},
				"PostcallWebhook": obj{"type": "object", "required": []string{"type", "data"}, "properties": obj{
					"type": obj{"type": "string", "description": "Handled: post_call_transcription, post_call_audio, call_initiation_failure; " +
						"any other is answered 200 and ignored.", "examples": []string{"post_call_transcription", "post_call_audio", "call_initiation_failure"}},
					"event_timestamp": obj{"description": "Unix seconds; not read."},
					"data":            obj{"type": "object", "description": "ElevenLabs' payload: conversation_id, transcript, metadata, analysis, full_audio (base64) or failure_reason."},
				}},
				"SetupResult": obj{"type": "object", "required": []string{"success", "created"}, "properties": obj{
					"success": obj{"type": "boolean", "const": true},
					"created": obj{"type": "array", "items": obj{"type": "string", "pattern": "^(config|secret):"},
						"description": "config:<key> for each default stored, secret:<KEY> for each placeholder created."},
					"status": obj{"type": "string", "enum": []string{store.StatusNotConfigured, store.StatusActive, store.StatusPaused,
						store.StatusHasErrors, store.StatusFailed}},
				}},
				"Health": obj{"type": "object", "required": []string{"status"}, "properties": obj{
					"status": obj{"type": "string", "enum": []string{"ok", "degraded"}},
					"checks": obj{"type": "object", "description": "Only with the webhook token.", "additionalProperties": obj{"type": "object", "required": []string{"ok"},
						"properties": obj{"ok": obj{"type": "boolean"}, "error": obj{"type": "string"}}}},
				}},
				"CronTriggerRequest": obj{"type": "object", "additionalProperties": false, "properties": obj{
					"handlerName": obj{"type": "string", "enum": []string{"retry"}, "description": "Run only this scheduled handler."},
				}},
				"CronTriggerResult": obj{"type": "object", "required": []string{"success", "ran"}, "properties": obj{
					"success": obj{"type": "boolean", "const": true},
					"ran": obj{"type": "array", "items": obj{"type": "object", "properties": obj{
						"handlerName": obj{"type": "string"}, "requeued": obj{"type": "integer", "minimum": 0}}}},
				}},
			},
		},
	}
}
