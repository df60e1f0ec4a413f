package admin_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestConsoleDeadLetters: the dead-letter page lists the owner's dead
// letters with their reason, and none of another owner's; filters narrow
// the list; replaying one from its row (after a confirmation) makes its
// call exist and be dialled once, and takes it off the list; "Replay all
// shown" replays what is left.
func TestConsoleDeadLetters(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Dead letters", c.va, map[string]any{"concurrency_limit": 5})
	stranger := c.env.Admin(c.inst, "someone-else")
	theirs := stranger.CreateIntegration("Not yours", c.va, nil)
	const reason = "insert calls: dial tcp 127.0.0.1:5432: connect: connection refused"
	first := c.env.DeadLetterOriginate(t, in.ID, "+380991230070", reason, 1)
	second := c.env.DeadLetterOriginate(t, in.ID, "+380991230071", reason, 2)
	c.env.DeadLetterOriginate(t, theirs.ID, "+380991230072", "not for this owner", 3)

	b := c.b
	b.open("/admin/dead-letters")
	b.signIn(c.admin.Token)
	rows := `document.querySelectorAll('#dead-letters-list tbody tr')`
	b.until("the owner's two dead letters", rows+`.length === 2 && [...`+rows+`].every((tr) =>
		tr.cells[3].textContent === `+jsonString(reason)+` && tr.cells[2].textContent === 'Dead letters')`)
	if body := b.text(); strings.Contains(body, "not for this owner") {
		t.Fatal("another owner's dead letter is shown")
	}
	// A filter the dead letters do not match empties the list.
	choose(b, `select[name="stream"]`, "postcall")
	b.until("no postcall dead letters", `document.querySelector('#dead-letters-summary').textContent.startsWith('No dead letters')`)
	choose(b, `select[name="stream"]`, "")
	b.until("both again", rows+`.length === 2`)

	// Replay the first from its row.
	var seq string
	b.eval(`[...`+rows+`][0].dataset.seq`, &seq)
	b.click(fmt.Sprintf(`#dead-letters-list tr[data-seq=%q] button`, seq))
	b.click(`dialog[open] button[value="ok"]`)
	b.until("one left", rows+`.length === 1 && `+rows+`[0].dataset.seq !== `+jsonString(seq))
	dialled := c.va.Next(t, waitFor)
	waitStatus(t, c, first.String(), "initiated")
	if dialled.Call() != first.String() {
		t.Fatalf("dialled %s, want the replayed call %s", dialled.CallID, first)
	}

	// Replay all that is left.
	b.click(`#replay-all`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("none left", `document.querySelector('#dead-letters-summary').textContent.startsWith('No dead letters')`)
	if next := c.va.Next(t, waitFor); next.Call() != second.String() {
		t.Fatalf("dialled %s, want the second replayed call %s", next.CallID, second)
	}
	waitStatus(t, c, second.String(), "initiated")
	// Each replayed call was dialled once; the stranger's stays dead.
	for _, id := range []string{first.String(), second.String()} {
		if n := c.va.CountFor(id); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
	}
	var left []map[string]any
	if stranger.Do("GET", "/api/dead-letters", nil, &left); len(left) != 1 {
		t.Fatalf("the other owner's dead letters: %v", left)
	}
}

// choose selects value in the select the selector names, as a user does
// (a change event follows).
func choose(b *browser, selector, value string) {
	b.t.Helper()
	var ok bool
	b.eval(`(() => { const s = document.querySelector(`+jsonString(selector)+`); if (!s) return false;
		s.value = `+jsonString(value)+`; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, &ok)
	if !ok {
		b.t.Fatalf("no %s", selector)
	}
}
