package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/phone"
	"github.com/callqueue/callqueue/store"
)

// MaxRecipientsPerRequest bounds one upload of recipients (413 beyond).
const MaxRecipientsPerRequest = 10000

// recipientsBodyLimit leaves room for 10,000 rows with their variables.
const recipientsBodyLimit = 32 << 20

// Rejected is a row of an upload that was not added, and why. Row counts
// from 1: the first element of a JSON array, the first line after a CSV
// header.
type Rejected struct {
	Row     int    `json:"row"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// isCSV reports whether the request's body is CSV rather than JSON.
func isCSV(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "text/csv"
}

// tooManyRows is the answer to an upload beyond MaxRecipientsPerRequest.
func tooManyRows(limit int) error {
	return jsonhttp.Errorf(http.StatusRequestEntityTooLarge, "too_many_rows", "", "at most %d rows per request", limit)
}

// recipientJSON is one recipient of a JSON upload.
type recipientJSON struct {
	PhoneNumber      *string         `json:"phoneNumber"`
	RecordID         json.RawMessage `json:"recordId"`
	ExternalID       json.RawMessage `json:"externalId"`
	Timezone         *string         `json:"timezone"`
	DynamicVariables json.RawMessage `json:"dynamicVariables"`
}

// parseRecipientsJSON reads a JSON array of recipients; a malformed array
// is a 400, a bad element a rejected row.
func parseRecipientsJSON(body []byte, region string) ([]store.Recipient, []Rejected, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil || elems == nil {
		return nil, nil, jsonhttp.BadRequest("", "body must be a JSON array of recipients, or text/csv")
	}
	return decodeRecipientsJSON(elems, region, "")
}

func decodeRecipientsJSON(elems []json.RawMessage, region, path string) ([]store.Recipient, []Rejected, error) {
	if len(elems) > MaxRecipientsPerRequest {
		return nil, nil, tooManyRows(MaxRecipientsPerRequest)
	}
	out := make([]store.Recipient, 0, len(elems))
	rejected := []Rejected{}
	for i, raw := range elems {
		var in recipientJSON
		if err := jsonhttp.Decode(raw, &in); err != nil {
			var je *jsonhttp.Error
			field := ""
			if errors.As(err, &je) {
				field = je.Field
			}
			rejected = append(rejected, Rejected{Row: i + 1, Field: path + field, Message: "not a recipient object: " + err.Error()})
			continue
		}
		rec, field, msg := recipient(deref(in.PhoneNumber), scalar(in.RecordID), scalar(in.ExternalID), in.Timezone,
			in.DynamicVariables, region, jsonNames)
		if msg != "" {
			rejected = append(rejected, Rejected{Row: i + 1, Field: path + field, Message: msg})
			continue
		}
		out = append(out, rec)
	}
	return out, rejected, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// scalar reads an id given as a string or a number; anything else is "\x00"
// so that it is refused.
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return "\x00"
}

// fieldNames are a recipient's field names in one format.
type fieldNames struct{ phone, record, external, timezone, vars string }

var (
	jsonNames = fieldNames{"phoneNumber", "recordId", "externalId", "timezone", "dynamicVariables"}
	csvNames  = fieldNames{"phone_number", "record_id", "external_id", "timezone", ""}
)

// recipient validates one recipient; on a bad value it returns the field
// and the message instead.
func recipient(number, recordID, externalID string, tz *string, vars json.RawMessage, region string,
	names fieldNames) (store.Recipient, string, string) {
	var r store.Recipient
	if strings.TrimSpace(number) == "" {
		return r, names.phone, "is required"
	}
	e164, err := phone.Normalize(number, region)
	if err != nil {
		return r, names.phone, "cannot be read as a phone number"
	}
	r.PhoneNumber = e164
	for _, id := range []struct {
		value, field string
		dst          *string
	}{{recordID, names.record, &r.RecordID}, {externalID, names.external, &r.ExternalID}} {
		if id.value == "\x00" || len(id.value) > 200 {
			return r, id.field, "must be a string or number of at most 200 characters"
		}
		*id.dst = id.value
	}
	if tz != nil && *tz != "" {
		if !config.ValidTimezone(*tz) {
			return r, names.timezone, "must be an IANA time zone such as Europe/Kyiv"
		}
		r.Timezone = *tz
	}
	if v := bytes.TrimSpace(vars); len(v) > 0 && string(v) != "null" {
		if v[0] != '{' || !json.Valid(v) {
			return r, names.vars, "must be an object"
		}
		r.DynamicVariables = v
	}
	return r, "", ""
}

// parseRecipientsCSV reads a CSV upload: a header row naming phone_number
// and optionally record_id, external_id and timezone; every other column
// becomes a dynamic variable of the row.
func parseRecipientsCSV(body []byte, region string) ([]store.Recipient, []Rejected, error) {
	var out []store.Recipient
	rejected, err := readCSVUpload(body, func(_ int, row csvRow) (string, string) {
		if len(row.values) != len(row.columns) {
			return "", "row has a different number of columns than the header"
		}
		var number, recordID, externalID string
		var tz *string
		vars := map[string]string{}
		for i, v := range row.values {
			switch row.columns[i] {
			case "phone_number":
				number = v
			case "record_id":
				recordID = strings.TrimSpace(v)
			case "external_id":
				externalID = strings.TrimSpace(v)
			case "timezone":
				t := strings.TrimSpace(v)
				tz = &t
			case "":
			default:
				vars[row.columns[i]] = v
			}
		}
		var rawVars json.RawMessage
		if len(vars) > 0 {
			rawVars, _ = json.Marshal(vars) // strings always marshal
		}
		r, field, msg := recipient(number, recordID, externalID, tz, rawVars, region, csvNames)
		if msg == "" {
			out = append(out, r)
		}
		return field, msg
	})
	if err != nil {
		return nil, nil, err
	}
	return out, rejected, nil
}
