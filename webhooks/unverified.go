package webhooks

import (
	"errors"
	"io"
	"net/http"
	"net/netip"

	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/jsonhttp"
)

// UnverifiedBudget bounds the bytes held for bodies read before their
// signature is checked (ratelimit.Budget).
type UnverifiedBudget interface {
	Take(client netip.Addr, n int64) bool
	Give(client netip.Addr, n int64)
}

// UnverifiedRetryAfter is the Retry-After, in seconds, of a body refused
// because the unverified budget is spent: the bodies holding it are
// answered (or cut off by the server's read timeout) soon.
const UnverifiedRetryAfter = "5"

// unverifiedChunk is the least the budget is asked for at once.
const unverifiedChunk = 64 << 10

// errBudgetSpent is a body that would pass the unverified budget.
var errBudgetSpent = errors.New("unverified body budget spent")

// readUnverified reads a body of at most limit bytes that no signature
// vouches for yet, holding the memory it grows into against budget. It
// returns the body and the function that gives the memory back, to be
// called once the body is verified or refused. Past the budget it answers
// 503 with Retry-After (the reserved memory given back at once).
func readUnverified(w http.ResponseWriter, r *http.Request, limit int64, budget UnverifiedBudget) ([]byte, func(), error) {
	client := clientip.ClientIP(r)
	var held int64
	release := func() {
		budget.Give(client, held)
		held = 0
	}
	if r.ContentLength > limit {
		return nil, release, tooLarge(limit)
	}
	grow := func(to int64) error {
		if !budget.Take(client, to-held) {
			return errBudgetSpent
		}
		held = to
		return nil
	}
	// A declared length is held at once and read into a buffer of exactly
	// that size; an unknown one grows by doubling, each step held first.
	capacity := int64(unverifiedChunk)
	if r.ContentLength >= 0 {
		capacity = r.ContentLength + 1 // +1: to see a body longer than declared
	}
	capacity = min(capacity, limit+1)
	err := grow(capacity)
	buf := make([]byte, 0, capacity)
	for err == nil {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				err = tooLarge(limit)
				break
			}
			next := min(2*int64(cap(buf)), limit+1)
			if err = grow(next); err != nil {
				break
			}
			buf = append(make([]byte, 0, next), buf...)
		}
		var n int
		n, err = r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
	}
	switch {
	case errors.Is(err, io.EOF) && int64(len(buf)) <= limit:
		return buf, release, nil
	case errors.Is(err, io.EOF):
		err = tooLarge(limit)
	case errors.Is(err, errBudgetSpent):
		w.Header().Set("Retry-After", UnverifiedRetryAfter)
		err = jsonhttp.Errorf(http.StatusServiceUnavailable, "unavailable", "",
			"too many unverified request bodies are being read; retry later")
	default:
		var e *jsonhttp.Error
		if !errors.As(err, &e) {
			err = jsonhttp.BadRequest("", "could not read body")
		}
	}
	release()
	return nil, release, err
}

func tooLarge(limit int64) error {
	return jsonhttp.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "", "body exceeds %d bytes", limit)
}
