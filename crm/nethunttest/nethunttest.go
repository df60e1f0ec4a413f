// Package nethunttest is a stand-in for NetHunt CRM's Zapier API (the
// Integration API callqueue's NetHunt adapter speaks), for tests. It
// behaves as the live API does where that matters to a client, not kinder:
//
//   - records keep their fields as people typed them ("+380 99 123 45 67",
//     "099 123 4567"); multi-value fields (phones, e-mails) are arrays;
//   - results carry the record's id as "recordId";
//   - find-record's query is `"<field>":"<value>"`; the search is
//     tokenised and matches word prefixes, so one query can return several
//     records, the most recently changed first, at most `limit` (default 1);
//   - no match is a 404, a bad key a plain-text 401;
//   - dropdown fields take only their option labels;
//   - RateLimit makes it answer 429 with a Retry-After header.
package nethunttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
)

// Credentials the fake accepts (HTTP Basic: e-mail and API key), and the
// folder New creates.
const (
	Email  = "robot@example.com"
	APIKey = "nethunt-api-key" //nolint:gosec // G101: a test fixture, not a credential
	Folder = "5f1b2c3d4e5f6a7b8c9d0e1f"
)

// Path is where the API lives under the server's URL.
const Path = "/api/v1/zapier"

// Field is a field of a folder. Multi fields hold arrays; a field with
// Options is a dropdown that takes only those labels.
type Field struct {
	Name    string
	Multi   bool
	Options []string
}

// DefaultFields are the fields of the folder New creates.
var DefaultFields = []Field{
	{Name: "Name"}, {Name: "Phone", Multi: true}, {Name: "Email", Multi: true}, {Name: "Company"}, {Name: "Source"},
	{Name: "Status", Options: []string{"New", "Called", "No answer", "Busy", "Voicemail", "Call failed", "Not interested"}},
}

// Record is a stored record.
type Record struct {
	ID        string
	Folder    string
	Fields    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Comment and CallLog are what was written on a record.
type (
	Comment struct {
		ID, RecordID, Text string
	}
	CallLog struct {
		ID, RecordID, Text string
		Time               time.Time
		Duration           float64 // minutes
	}
)

// Request is one request the fake received and what it answered.
type Request struct {
	Method string
	Path   string // escaped, as sent
	Query  string // raw, as sent
	Header http.Header
	Body   string
	Status int
}

// Server is the fake NetHunt.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	folders   map[string][]Field
	records   []*Record // in creation order
	comments  []Comment
	callLogs  []CallLog
	requests  []Request
	seq       int
	clock     time.Time
	status    int
	limited   int
	retryWith string
	failing   map[string]failure
}

// failure is how an endpoint fails, and how many more times.
type failure struct{ status, times int }

// New starts a fake with one folder, Folder, of DefaultFields.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{folders: map[string][]Field{Folder: DefaultFields},
		clock: time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// BaseURL is the crm.base_url that points at the fake.
func (s *Server) BaseURL() string { return s.URL + Path }

// AddFolder adds (or replaces) a folder.
func (s *Server) AddFolder(id string, fields ...Field) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folders[id] = fields
}

// AddRecord stores a record in folder with fields as typed (a multi field
// given a string holds it as a one-element array) and returns its id.
// Records added later count as more recently changed.
func (s *Server) AddRecord(folder string, fields map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := fmt.Sprintf("%024x", 0xabc000+s.seq)
	stored := map[string]any{}
	for name, v := range fields {
		if f, ok := fieldOf(s.folders[folder], name); ok && f.Multi {
			if str, isString := v.(string); isString {
				v = []any{str}
			}
		}
		stored[name] = v
	}
	at := s.tick()
	s.records = append(s.records, &Record{ID: id, Folder: folder, Fields: stored, CreatedAt: at, UpdatedAt: at})
	return id
}

// Record returns a copy of a stored record.
func (s *Server) Record(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if r.ID == id {
			cp := *r
			cp.Fields = map[string]any{}
			for k, v := range r.Fields {
				cp.Fields[k] = v
			}
			return cp, true
		}
	}
	return Record{}, false
}

// Comments returns the comments written on record id.
func (s *Server) Comments(id string) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return onRecord(s.comments, id)
}

// CallLogs returns the call logs written on record id.
func (s *Server) CallLogs(id string) []CallLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return onRecord(s.callLogs, id)
}

func (c Comment) recordID() string { return c.RecordID }
func (c CallLog) recordID() string { return c.RecordID }

// onRecord is what of written belongs to record id.
func onRecord[T interface{ recordID() string }](written []T, id string) []T {
	var out []T
	for _, w := range written {
		if w.recordID() == id {
			out = append(out, w)
		}
	}
	return out
}

// Requests returns every request so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Writes returns the POST requests so far.
func (s *Server) Writes() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost {
			out = append(out, r)
		}
	}
	return out
}

// SetStatus makes every request answer status (an outage); 0 restores.
func (s *Server) SetStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Fail makes the next times requests to endpoint ("actions/create-comment",
// "searches/find-record", ...) answer status.
func (s *Server) Fail(endpoint string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing == nil {
		s.failing = map[string]failure{}
	}
	s.failing[endpoint] = failure{status, times}
}

// RateLimit makes the next n requests answer 429 with Retry-After
// retryAfter (seconds or an HTTP date).
func (s *Server) RateLimit(n int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited, s.retryWith = n, retryAfter
}

// tick is the fake's clock: each change is a second after the last, so
// "most recently changed" is well defined. s.mu is held.
func (s *Server) tick() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

func fieldOf(fields []Field, name string) (Field, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// routes: endpoint name → method.
var routes = map[string]string{
	"triggers/auth-test": http.MethodGet, "triggers/folder-field": http.MethodGet, "searches/find-record": http.MethodGet,
	"actions/update-record": http.MethodPost, "actions/create-comment": http.MethodPost, "actions/create-call-log": http.MethodPost,
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: string(body)})
	rec := &s.requests[len(s.requests)-1]
	text := func(status int, msg string) {
		rec.Status = status
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg)
	}
	answer := func(v any) {
		rec.Status = http.StatusOK
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(v)
	}
	if user, key, ok := r.BasicAuth(); !ok || user != Email || key != APIKey {
		text(http.StatusUnauthorized, "Unauthorized")
		return
	}
	if s.limited > 0 {
		s.limited--
		w.Header().Set("Retry-After", s.retryWith)
		text(http.StatusTooManyRequests, "Too Many Requests")
		return
	}
	if s.status != 0 {
		text(s.status, http.StatusText(s.status))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Path+"/")
	if !ok {
		text(http.StatusNotFound, "Not Found")
		return
	}
	endpoint, arg := rest, ""
	if i := strings.LastIndex(rest, "/"); i >= 0 && rest != "triggers/auth-test" {
		endpoint, arg = rest[:i], rest[i+1:]
	}
	method, known := routes[endpoint]
	switch {
	case !known:
		text(http.StatusNotFound, "Not Found")
		return
	case r.Method != method:
		text(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	case method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		text(http.StatusBadRequest, "Expected a JSON body")
		return
	}
	if f := s.failing[endpoint]; f.times > 0 {
		s.failing[endpoint] = failure{f.status, f.times - 1}
		text(f.status, http.StatusText(f.status))
		return
	}
	switch endpoint {
	case "triggers/auth-test":
		answer(map[string]any{"personalName": "Robot", "emailAddress": Email})
	case "triggers/folder-field":
		fields, ok := s.folders[arg]
		if !ok {
			text(http.StatusNotFound, "Folder not found")
			return
		}
		out := []map[string]any{}
		for _, f := range fields {
			out = append(out, map[string]any{"name": f.Name})
		}
		answer(out)
	case "searches/find-record":
		s.find(arg, r, answer, text)
	default:
		s.write(endpoint, arg, body, answer, text)
	}
}

// find answers searches/find-record/{folder}.
func (s *Server) find(folder string, r *http.Request, answer func(any), text func(int, string)) {
	fields, ok := s.folders[folder]
	if !ok {
		text(http.StatusNotFound, "Not Found")
		return
	}
	q := r.URL.Query()
	limit := 1
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			text(http.StatusBadRequest, "Invalid limit")
			return
		}
		limit = n
	}
	var found []*Record
	if id := q.Get("recordId"); id != "" {
		for _, rec := range s.records {
			if rec.ID == id && rec.Folder == folder {
				found = append(found, rec)
			}
		}
	} else {
		field, value, ok := parseQuery(q.Get("query"))
		if !ok {
			text(http.StatusBadRequest, "Invalid query")
			return
		}
		if _, known := fieldOf(fields, field); known {
			found = s.search(folder, field, value)
		}
	}
	if len(found) == 0 {
		text(http.StatusNotFound, "Not Found")
		return
	}
	out := []map[string]any{}
	for _, rec := range found[:min(limit, len(found))] {
		out = append(out, recordJSON(rec))
	}
	answer(out)
}

// search returns folder's records whose field has a word that a word of
// value begins, the most recently changed first.
func (s *Server) search(folder, field, value string) []*Record {
	want := words(value)
	var out []*Record
	for _, rec := range s.records {
		if rec.Folder != folder {
			continue
		}
		var have []string
		for _, v := range values(rec.Fields[field]) {
			have = append(have, words(v)...)
		}
		if slices.ContainsFunc(want, func(w string) bool {
			return slices.ContainsFunc(have, func(h string) bool { return strings.HasPrefix(h, w) })
		}) {
			out = append(out, rec)
		}
	}
	slices.SortStableFunc(out, func(a, b *Record) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out
}

// parseQuery reads `"<field>":"<value>"`, the field and value each quoted
// or not.
func parseQuery(q string) (field, value string, ok bool) {
	unquote := func(s string) string {
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			return s[1 : len(s)-1]
		}
		return s
	}
	if strings.HasPrefix(q, `"`) {
		end := strings.Index(q[1:], `"`)
		if end < 0 || !strings.HasPrefix(q[end+2:], ":") {
			return "", "", false
		}
		field, value = q[1:end+1], q[end+3:]
	} else if field, value, ok = strings.Cut(q, ":"); !ok {
		return "", "", false
	}
	value = unquote(strings.TrimSpace(value))
	return field, value, field != "" && value != ""
}

// words tokenises a value as the search index does: lower-cased runs of
// letters and digits, and, for a value made of digits and separators, the
// digits joined (so "+380 99 123 45 67" is also "380991234567").
func words(v string) []string {
	parts := strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(parts) > 1 && !slices.ContainsFunc(parts, func(p string) bool {
		return strings.ContainsFunc(p, func(r rune) bool { return !unicode.IsDigit(r) })
	}) {
		parts = append(parts, strings.Join(parts, ""))
	}
	return parts
}

// values is a field's value as strings (one per element of an array).
func values(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func recordJSON(r *Record) map[string]any {
	return map[string]any{"recordId": r.ID, "createdAt": r.CreatedAt.Format(time.RFC3339Nano),
		"updatedAt": r.UpdatedAt.Format(time.RFC3339Nano), "fields": r.Fields}
}

// write answers the actions on a record.
func (s *Server) write(endpoint, id string, body []byte, answer func(any), text func(int, string)) {
	var rec *Record
	for _, r := range s.records {
		if r.ID == id {
			rec = r
		}
	}
	if rec == nil {
		text(http.StatusNotFound, "Record not found")
		return
	}
	switch endpoint {
	case "actions/update-record":
		var in struct {
			FieldActions map[string]struct {
				Overwrite bool `json:"overwrite"`
				Add       any  `json:"add"`
			} `json:"fieldActions"`
		}
		if err := json.Unmarshal(body, &in); err != nil || len(in.FieldActions) == 0 {
			text(http.StatusBadRequest, "Invalid fieldActions")
			return
		}
		for name, a := range in.FieldActions {
			f, ok := fieldOf(s.folders[rec.Folder], name)
			if !ok {
				text(http.StatusBadRequest, "Unknown field "+name)
				return
			}
			for _, v := range values(a.Add) {
				if f.Options != nil && !slices.Contains(f.Options, v) {
					text(http.StatusBadRequest, fmt.Sprintf("Invalid option %q for field %s", v, name))
					return
				}
			}
		}
		for name, a := range in.FieldActions {
			if f, _ := fieldOf(s.folders[rec.Folder], name); f.Multi {
				var list []any
				if !a.Overwrite {
					list, _ = rec.Fields[name].([]any)
				}
				for _, v := range values(a.Add) {
					list = append(list, v)
				}
				rec.Fields[name] = list
			} else if vs := values(a.Add); len(vs) > 0 {
				rec.Fields[name] = vs[0]
			}
		}
		rec.UpdatedAt = s.tick()
		answer(recordJSON(rec))
	case "actions/create-comment":
		var in struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(body, &in); err != nil || strings.TrimSpace(in.Text) == "" {
			text(http.StatusBadRequest, "Invalid text")
			return
		}
		s.seq++
		c := Comment{ID: fmt.Sprintf("comment-%d", s.seq), RecordID: id, Text: in.Text}
		s.comments = append(s.comments, c)
		answer(map[string]any{"commentId": c.ID, "recordId": id, "createdAt": s.tick().Format(time.RFC3339Nano), "text": c.Text})
	case "actions/create-call-log":
		var in struct {
			Text     string   `json:"text"`
			Time     string   `json:"time"`
			Duration *float64 `json:"duration"`
		}
		if err := json.Unmarshal(body, &in); err != nil || strings.TrimSpace(in.Text) == "" {
			text(http.StatusBadRequest, "Invalid text")
			return
		}
		c := CallLog{RecordID: id, Text: in.Text}
		if in.Time != "" {
			at, err := time.Parse(time.RFC3339Nano, in.Time)
			if err != nil {
				text(http.StatusBadRequest, "Invalid time")
				return
			}
			c.Time = at
		}
		if in.Duration != nil {
			if *in.Duration < 0 {
				text(http.StatusBadRequest, "Invalid duration")
				return
			}
			c.Duration = *in.Duration
		}
		s.seq++
		c.ID = fmt.Sprintf("call-log-%d", s.seq)
		s.callLogs = append(s.callLogs, c)
		answer(map[string]any{"callLogId": c.ID, "recordId": id, "createdAt": s.tick().Format(time.RFC3339Nano),
			"text": c.Text, "duration": c.Duration, "time": c.Time.Format(time.RFC3339Nano),
			"endTime": c.Time.Add(time.Duration(c.Duration * float64(time.Minute))).Format(time.RFC3339Nano)})
	}
}
