package dialer

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// The simulator's webhook bodies: what a Voice Assistant sends to
// call-events and what ElevenLabs sends to agent-postcall, in their wire
// formats, so that they are decoded and applied like real ones.

// simScript is one generated conversation.
type simScript struct {
	lines      []string // agent and callee in turn, the agent first
	summary    string
	successful string // ElevenLabs' call_successful
	interested bool
}

var simScripts = []simScript{
	{
		lines: []string{
			"Добрий день, {name}! Це асистентка компанії. Вам зручно говорити?",
			"Так, слухаю.",
			"Ви залишали заявку на консультацію. Підкажіть, коли вам зручно, щоб менеджер зателефонував?",
			"Завтра після обіду.",
			"Записала: завтра після 14:00. Дякую, гарного дня!",
		},
		summary: "Клієнт підтвердив інтерес і попросив передзвонити завтра після 14:00.", successful: "success", interested: true,
	},
	{
		lines: []string{
			"Добрий день, {name}! Телефоную щодо вашої заявки. Маєте хвилинку?",
			"Так, але коротко.",
			"Уточнімо: вас цікавить підключення для компанії чи для себе?",
			"Для компанії, нас п'ятеро.",
			"Зрозуміла, менеджер надішле пропозицію на пошту. Дякую!",
		},
		summary: "Клієнт цікавиться підключенням для компанії з п'яти людей; чекає пропозицію на пошту.", successful: "success", interested: true,
	},
	{
		lines: []string{
			"Добрий день, {name}! Ви залишали заявку на нашому сайті.",
			"Ні, мене вже не цікавить, дякую.",
			"Зрозуміла. Можна дізнатися чому?",
			"Вже вибрали іншого постачальника.",
			"Дякую за відповідь, гарного дня!",
		},
		summary: "Клієнт відмовився: вже обрав іншого постачальника.", successful: "failure", interested: false,
	},
}

// simCallEvent is a call-events body as the VA sends it.
func simCallEvent(eventType, callID, conversationID string, duration *int, reason, externalID string, attempt int) []byte {
	body := map[string]any{"eventType": eventType, "callId": callID,
		// The platform's own ids make each attempt's bodies its own.
		"metadata": map[string]any{"simulator": true, "external_id": externalID, "attempt": attempt}}
	if conversationID != "" {
		body["conversation_id"] = conversationID
	}
	if duration != nil {
		body["duration"] = *duration
	}
	if reason != "" {
		body["reason"] = reason
	}
	raw, _ := json.Marshal(body) // maps of plain values always marshal
	return raw
}

// simPostcall is an ElevenLabs post_call_transcription body for an
// answered call: a short conversation, its analysis and the dynamic
// variables the agent was started with (call_id and phone_number among
// them, which link the post-call to the call).
func simPostcall(req Request, callID, conversationID string, plan SimPlan, started time.Time) []byte {
	vars := map[string]any{}
	if raw := bytes.TrimSpace(req.DynamicVariables); len(raw) > 0 {
		_ = json.Unmarshal(raw, &vars) // validated on intake; a bad value only loses the name
	}
	name, _ := vars["client_name"].(string)
	if name == "" {
		name = "пане/пані"
	}
	vars["call_id"], vars["phone_number"] = callID, req.Phone
	script := simScripts[plan.Script%len(simScripts)]
	transcript := make([]map[string]any, len(script.lines))
	step := max(plan.Duration/len(script.lines), 1)
	for i, line := range script.lines {
		role := "agent"
		if i%2 == 1 {
			role = "user"
		}
		transcript[i] = map[string]any{"role": role, "message": strings.ReplaceAll(line, "{name}", name), "time_in_call_secs": i * step}
	}
	body := map[string]any{
		"type": "post_call_transcription", "event_timestamp": started.Add(time.Duration(plan.PostcallAfter) * time.Second).Unix(),
		"data": map[string]any{
			"agent_id": "simulator", "conversation_id": conversationID, "status": "done",
			"transcript": transcript,
			"metadata": map[string]any{
				"start_time_unix_secs": started.Add(time.Duration(plan.StartAfter) * time.Second).Unix(),
				"call_duration_secs":   plan.Duration, "termination_reason": "Call ended by remote party",
				"phone_call": map[string]any{"direction": "outbound", "external_number": req.Phone, "type": "simulator"},
			},
			"analysis": map[string]any{
				"call_successful": script.successful, "transcript_summary": script.summary,
				"evaluation_criteria_results": map[string]any{},
				"data_collection_results": map[string]any{
					"interested": map[string]any{"data_collection_id": "interested", "value": script.interested, "rationale": script.summary},
				},
			},
			"conversation_initiation_client_data": map[string]any{"dynamic_variables": vars},
		},
	}
	raw, _ := json.Marshal(body)
	return raw
}
