// Package hmacsig is the signed-webhook header both callqueue's CRM
// webhooks and ElevenLabs' post-call webhooks use:
// "t=<unix>,<scheme>=<hex HMAC-SHA256(secret, "<t>.<raw body>")>", with
// the scheme v1 for ours and v0 for ElevenLabs'. Callers apply their own
// rules for age and comparison.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// ErrMalformed is a header that is not "t=<unix>,<scheme>=<hex>[,...]".
var ErrMalformed = errors.New("signature header is malformed")

// Sum is the hex HMAC-SHA256 of "<ts>.<body>" under secret.
func Sum(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Header is the header value for body signed at unix time ts.
func Header(secret, scheme, ts string, body []byte) string {
	return "t=" + ts + "," + scheme + "=" + Sum(secret, ts, body)
}

// Parse reads a header: its timestamp as given and as a number, and every
// signature under scheme (several, while a secret is being rotated).
func Parse(header, scheme string) (ts string, unix int64, sigs []string, err error) {
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", 0, nil, ErrMalformed
		}
		switch k {
		case "t":
			ts = v
		case scheme:
			sigs = append(sigs, v)
		}
	}
	unix, err = strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return "", 0, nil, ErrMalformed
	}
	return ts, unix, sigs, nil
}
