package elevenlabs

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AppendJSON appends d encoded byte for byte as json.Marshal encodes it
// (members sorted, HTML characters escaped), or returns b and the error
// json.Marshal would return. Agent-init answers one for every conversation,
// and encoding/json's reflection over the variables was most of its cost.
func (d ClientData) AppendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, `{"type":`...)
	b = appendString(b, d.Type)
	b = append(b, `,"dynamic_variables":`...)
	b, err := appendObject(b, d.DynamicVariables, 0)
	if err == nil && len(d.ConversationConfig) > 0 { // omitempty
		b = append(b, `,"conversation_config_override":`...)
		b, err = appendObject(b, d.ConversationConfig, 0)
	}
	if err != nil {
		return b[:start], err
	}
	return append(b, '}'), nil
}

// maxNesting is how deep AppendJSON follows maps and slices itself (an
// answer nests three deep: the override's prompt); deeper values are left
// to encoding/json, which also finds a cycle among them.
const maxNesting = 16

// appendValue appends v as encoding/json encodes it inside a map[string]any.
func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendFloat(b, v)
	case json.Number:
		return appendNumber(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case map[string]any:
		if depth < maxNesting {
			return appendObject(b, v, depth+1)
		}
	case []any:
		if depth < maxNesting {
			return appendArray(b, v, depth+1)
		}
	}
	text, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, text...), nil
}

// member is a map entry, sorted by name as encoding/json sorts them.
type member struct {
	name  string
	value any
}

func appendObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	// An answer's variables fit without allocating.
	var small [16]member
	var smallOrder [16]int
	members, order := small[:0], smallOrder[:0]
	for name, value := range m {
		order = append(order, len(members))
		members = append(members, member{name, value})
	}
	// Sorted by index: moving the members would write pointers, each
	// through a write barrier while the GC runs (most of the time, in a
	// process answering many of these).
	slices.SortFunc(order, func(i, j int) int { return strings.Compare(members[i].name, members[j].name) })
	b = append(b, '{')
	var err error
	for n, i := range order {
		if n > 0 {
			b = append(b, ',')
		}
		b = appendString(b, members[i].name)
		b = append(b, ':')
		if b, err = appendValue(b, members[i].value, depth); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendArray(b []byte, s []any, depth int) ([]byte, error) {
	if s == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	var err error
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendValue(b, v, depth); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendFloat is encoding/json's float64 encoding: ES6 number formatting,
// exponents from 1e21 and below 1e-6, not padded.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		_, err := json.Marshal(f) // its error
		return b, err
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendNumber writes n as it is, "" as 0, as encoding/json does; a number
// that is not a JSON number is its error.
func appendNumber(b []byte, n json.Number) ([]byte, error) {
	if n == "" {
		return append(b, '0'), nil
	}
	if !validNumber(string(n)) {
		_, err := json.Marshal(n)
		return b, err
	}
	return append(b, n...), nil
}

// validNumber is the JSON number grammar (RFC 8259 section 6).
func validNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	switch {
	case s == "":
		return false
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = strings.TrimLeft(s[1:], "0123456789")
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = strings.TrimLeft(s[2:], "0123456789")
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
		}
		if s == "" || s[0] < '0' || s[0] > '9' {
			return false
		}
		s = strings.TrimLeft(s, "0123456789")
	}
	return s == ""
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping: <,
// > and & as \u003c, \u003e and \u0026, U+2028 and U+2029 escaped, and
// each byte that is not UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
