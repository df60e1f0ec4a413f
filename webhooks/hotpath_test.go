package webhooks

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/jsonhttp"
)

// The hot paths' shortcuts answer, key and read exactly as the general
// code they replace.

func TestEncodedAnswersMatchWriteJSON(t *testing.T) {
	id := uuid.New()
	agent := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: map[string]any{"client_name": "Олена <&>",
		"order_id": json.Number("12345678901234567"), "visits": 3.0, "vip": true, "note": nil, "call_id": id.String()},
		ConversationConfig: map[string]any{"agent": map[string]any{"prompt": map[string]any{"prompt": "Be brief.\n"}}}}
	for _, c := range []struct {
		name    string
		encoded encodedJSON
		value   any
	}{
		{"accepted", accepted, map[string]any{"success": true}},
		{"accepted call", acceptedCall(id), map[string]any{"success": true, "callId": id}},
		{"agent-init", encodedAnswer(agent).(encodedJSON), agent},
	} {
		w := httptest.NewRecorder()
		jsonhttp.WriteJSON(w, 202, c.value)
		if got := string(c.encoded); got != w.Body.String() {
			t.Errorf("%s: %q, WriteJSON writes %q", c.name, got, w.Body.String())
		}
		// Wrapped in another answer (the admin API's invoke), it is the object.
		wrapped, err := json.Marshal(map[string]any{"result": c.encoded})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]any{"result": c.value})
		if !bytes.Equal(wrapped, want) {
			t.Errorf("%s wrapped: %s, want %s", c.name, wrapped, want)
		}
	}
}

// An answer encoding/json refuses is left to the general writer, which
// answers as it always did.
func TestEncodedAnswerRefused(t *testing.T) {
	refused := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: map[string]any{"x": math.NaN()}}
	if _, ok := encodedAnswer(refused).(elevenlabs.ClientData); !ok {
		t.Errorf("encodedAnswer(%v) = %T, want the answer itself", refused, encodedAnswer(refused))
	}
}

func TestBodyKeyMatchesHashKey(t *testing.T) {
	for _, body := range []string{"", "{}", `{"eventType":"call_end","callId":"va-1"}`, strings.Repeat("x", 5000)} {
		id := uuid.New()
		if got, want := bodyKey(id, []byte(body)), "event:"+hashKey(id.String(), body); got != want {
			t.Errorf("bodyKey %q, hashKey gives %q", got, want)
		}
	}
}

// scalarStringDecoded is scalarString through the decoder alone.
func scalarStringDecoded(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		return "", err
	}
	return n.String(), nil
}

func FuzzScalarString(f *testing.F) {
	for _, s := range []string{`"va-1"`, `" padded "`, `12345`, `-0`, `1e400`, `1.50`, `"a\"b"`, `"\u00e9"`, `"é"`,
		"\"\xff\"", `"\t"`, `true`, `{}`, `[]`, `null`, ` "x" `, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // scalarString reads values of documents that decoded
		}
		got, err := scalarString(raw)
		want, wantErr := scalarStringDecoded(raw)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: %q, %v; the decoder gives %q, %v", raw, got, err, want, wantErr)
		}
	})
}
