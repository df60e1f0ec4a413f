package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/pgtext"
	"github.com/callqueue/callqueue/queue"
)

// agentPostcall stores ElevenLabs' post-call webhooks (transcription, audio,
// initiation failure) for the workers. An authenticated body it cannot use
// is answered 200 and ignored, never 4xx: ElevenLabs counts failed
// deliveries and disables the webhook after ten, which would lose every
// later post-call of the workspace.
func (h *Handler) agentPostcall(ctx context.Context, r request) (int, any, error) {
	wh, err := elevenlabs.ParseWebhook(r.body)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, elevenlabs.ErrUnhandledType) {
			reason = "unknown_type"
		}
		return h.ignorePostcall(r, reason, postcallField(wh, err), err.Error())
	}
	var ids struct {
		ConversationID string `json:"conversation_id"`
		FullAudio      string `json:"full_audio"`
	}
	_ = json.Unmarshal(wh.Data, &ids) // data is an object (ParseWebhook); fields are optional
	body := queue.PostcallBody{Type: wh.Type, ReceivedAt: h.now()}
	if wh.Type == elevenlabs.TypeAudio {
		// Keep that the recording exists, not the recording.
		audio, err := base64.StdEncoding.DecodeString(ids.FullAudio)
		if err != nil {
			return h.ignorePostcall(r, "malformed", "data.full_audio", "full_audio must be base64")
		}
		sum := sha256.Sum256(audio)
		body.AudioBytes, body.AudioSHA256, body.ConversationID = len(audio), hex.EncodeToString(sum[:]), ids.ConversationID
	} else {
		// The transcript is the peer's text, kept whatever it holds:
		// without what Postgres cannot store.
		body.Raw = pgtext.CleanJSON(r.body)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	if len(data) > queue.MaxPayload-4096 {
		// JetStream can never take it: retrying would not help.
		return 0, nil, jsonhttp.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "",
			"%s bodies are kept up to %d bytes", wh.Type, queue.MaxPayload-4096)
	}
	// A conversation's post-call is one message however often it is sent;
	// only a body without a conversation is told apart by its bytes.
	dedupe := ids.ConversationID
	if dedupe == "" {
		dedupe = string(r.body)
	}
	msgID := "postcall:" + wh.Type + ":" + hashKey(r.in.ID.String(), dedupe)
	if _, err := h.publish(ctx, r, queue.Message{Kind: queue.KindPostcall, MsgID: msgID, Data: data}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"success": true}, nil
}

// ignorePostcall answers a post-call it sets aside: 200, with the reason
// and the part at fault for whoever reads the delivery log, logged and
// counted in callqueue_webhook_ignored_total.
func (h *Handler) ignorePostcall(r request, reason, field, detail string) (int, any, error) {
	if len(detail) > 200 { // it may quote the body's own type, of any length
		detail = strings.ToValidUTF8(detail[:200], "") + "…"
	}
	r.log(zerolog.WarnLevel).Str("reason", reason).Str("field", field).Str("detail", detail).Msg("agent-postcall ignored")
	h.metrics.WebhookIgnored.WithLabelValues(reason).Inc()
	answer := map[string]any{"success": true, "ignored": reason}
	if field != "" {
		answer["field"] = field
	}
	return http.StatusOK, answer, nil
}

// postcallField names the part of a post-call body that ParseWebhook
// refused: none for a body that is not JSON, else the member at fault.
func postcallField(wh elevenlabs.Webhook, err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return ""
	case errors.As(err, &typeErr):
		return typeErr.Field
	case wh.Type == elevenlabs.TypeTranscription || wh.Type == elevenlabs.TypeAudio || wh.Type == elevenlabs.TypeInitiationFailure:
		return "data"
	}
	return "type"
}
