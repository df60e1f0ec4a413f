package api

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/pgtext"
)

// csvRow is one data row of a CSV upload, read by its header's names.
type csvRow struct {
	columns []string
	index   map[string]int
	values  []string
}

// column names the i-th value of a row ("" past the header's columns).
func (r csvRow) column(i int) string {
	if i < len(r.columns) {
		return r.columns[i]
	}
	return ""
}

// get is the row's value in the named column ("" when it has none).
func (r csvRow) get(name string) string {
	if i, ok := r.index[name]; ok && i < len(r.values) {
		return r.values[i]
	}
	return ""
}

// readCSVUpload reads an uploaded CSV (recipients, suppressions): a header
// row that names phone_number, then at most MaxRecipientsPerRequest rows
// (413 beyond). each takes a row, numbered from 1 after the header, and
// says why it is rejected (msg) or takes it (""); unreadable rows are
// rejected here. The row's values are only valid during the call.
func readCSVUpload(body []byte, each func(row int, r csvRow) (field, msg string)) ([]Rejected, error) {
	rd := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))))
	rd.FieldsPerRecord = -1
	rd.ReuseRecord = true
	header, err := rd.Read()
	if err != nil {
		return nil, jsonhttp.BadRequest("", "CSV body must start with a header row")
	}
	r := csvRow{columns: make([]string, len(header)), index: map[string]int{}}
	for i, h := range header {
		r.columns[i] = strings.TrimSpace(h)
		r.index[r.columns[i]] = i
		if !pgtext.Valid(h) {
			// Column names become variable names: the whole upload is unusable.
			return nil, jsonhttp.CheckString(pgtext.Clean(r.columns[i]), h)
		}
	}
	if _, ok := r.index["phone_number"]; !ok {
		return nil, jsonhttp.Invalid("phone_number", "the CSV header must name a phone_number column")
	}
	rejected := []Rejected{}
	for row := 1; ; row++ {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return rejected, nil
		}
		if row > MaxRecipientsPerRequest {
			return nil, tooManyRows(MaxRecipientsPerRequest)
		}
		if err != nil {
			rejected = append(rejected, Rejected{Row: row, Message: "unreadable CSV row: " + err.Error()})
			continue
		}
		r.values = rec
		if i := slices.IndexFunc(rec, func(v string) bool { return !pgtext.Valid(v) }); i >= 0 {
			rejected = append(rejected, Rejected{Row: row, Field: r.column(i), Message: "must be UTF-8 text without the character U+0000"})
			continue
		}
		if field, msg := each(row, r); msg != "" {
			rejected = append(rejected, Rejected{Row: row, Field: field, Message: msg})
		}
	}
}
