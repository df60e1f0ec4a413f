package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// soakCampaign is the model of one campaign: what the operator asked of it
// and which of its requests were acknowledged.
type soakCampaign struct {
	id     uuid.UUID
	phones []string        // every number sent in an upload, answered or not
	added  map[string]bool // numbers in an upload answered 200
	// cancelled: a cancel was answered 200 (it must end cancelled);
	// cancelAsked: one was sent (it may end cancelled).
	cancelled, cancelAsked bool
	cancelledAt            time.Time
	paused                 bool // its last pause or resume was a pause
	// pauseUnsure: a pause or resume went unanswered (a lost COMMIT
	// answer, then an outage past the retries): it may be paused.
	pauseUnsure bool
	window      bool // a calling window of its own is set
	// excludes are its windows that excluded a date (soak_pacing_test.go).
	excludes []soakExclusion
}

// windowChanging ends the exclusions in force: a window change is sent.
func (cp *soakCampaign) windowChanging() {
	for i := range cp.excludes {
		if cp.excludes[i].until.IsZero() {
			cp.excludes[i].until = time.Now()
		}
	}
}

// adminDo sends an admin request to the API process without failing the
// test: the process may be restarting and the database cut. out, when not
// nil, receives a 2xx answer.
func (w *soakWorld) adminDo(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	w.apiMu.Lock()
	base := w.c.admin.URL
	w.apiMu.Unlock()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+w.c.admin.Token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// retryAdmin repeats an admin request while its answer is unknown (no
// answer, 5xx), as an operator would, for up to 20 s.
func (w *soakWorld) retryAdmin(method, path string, body, out any) int {
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, err := w.adminDo(method, path, body, out)
		if err == nil && code < 500 || time.Now().After(deadline) {
			return code
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// campaignStep is one operator action on campaigns: create, upload,
// pause, resume, cancel, or a PATCH of maxAttempts or the calling window.
func (w *soakWorld) campaignStep() {
	if len(w.campaigns) == 0 || w.rng.IntN(5) == 0 {
		w.createCampaign()
		return
	}
	cp := w.campaigns[w.rng.IntN(len(w.campaigns))]
	switch roll := w.rng.IntN(100); {
	case roll < 40:
		w.upload(cp)
	case roll < 55:
		w.pauseCampaign(cp, !cp.paused)
	case roll < 62:
		w.cancelCampaign(cp)
	case roll < 80:
		w.patchCampaign(cp, map[string]any{"maxAttempts": 1 + w.rng.IntN(3)})
		w.fault("campaign_patch max_attempts")
	default:
		// A window open now, one closed now (the calls wait for it; the
		// operator removes it once the faults stop), or none.
		// Or one open all day but excluding today's date.
		excluding, today := w.excludedToday()
		windows := []any{
			map[string]any{"timezone": "Europe/Kyiv", "start": "00:00", "end": "23:59"},
			map[string]any{"timezone": "Europe/Kyiv", "start": "03:00", "end": "04:00"},
			nil,
			excluding,
		}
		i := w.rng.IntN(len(windows))
		cp.windowChanging()
		if w.patchCampaign(cp, map[string]any{"callingWindow": windows[i]}) {
			cp.window = windows[i] != nil
			if i == 3 {
				cp.excludes = append(cp.excludes, soakExclusion{date: today, from: time.Now()})
			}
		} else {
			cp.window = cp.window || windows[i] != nil
		}
		w.fault("campaign_patch window")
	}
}

// adoptCampaign is what the operator does after a create went
// unanswered: it looks for the campaign by its name and, when it was
// created (its recipients maybe not), uploads them again.
func (w *soakWorld) adoptCampaign(name string, recipients []map[string]any) *soakCampaign {
	var list []store.Campaign
	if code := w.retryAdmin("GET", "/api/campaigns?integrationId="+w.c.integ.ID.String()+"&limit=100", nil, &list); code != http.StatusOK {
		w.t.Fatalf("list campaigns: %d", code)
	}
	i := slices.IndexFunc(list, func(c store.Campaign) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	cp := &soakCampaign{id: list[i].ID, added: map[string]bool{}}
	w.campaigns = append(w.campaigns, cp)
	w.uploadRecipients(cp, recipients)
	w.fault("campaign_create unanswered")
	return cp
}

func (w *soakWorld) nextCampaignPhones(n int) []map[string]any {
	var out []map[string]any
	for range n {
		out = append(out, map[string]any{"phoneNumber": fmt.Sprintf("+38067%07d", w.campaignPhones)})
		w.campaignPhones++
	}
	return out
}

func (w *soakWorld) createCampaign() {
	recipients := w.nextCampaignPhones(1 + w.rng.IntN(4))
	body := map[string]any{"name": fmt.Sprintf("soak %d", len(w.campaigns)+1), "concurrencyLimit": 1 + w.rng.IntN(soakLimit),
		"priority": 1 + w.rng.IntN(10), "maxAttempts": 1 + w.rng.IntN(3), "recipients": recipients}
	// Some campaigns start on a date their calling window excludes: their
	// calls wait until the operator removes the window.
	excluding, today := w.excludedToday()
	excluded := w.rng.IntN(4) == 0
	if excluded {
		body["callingWindow"] = excluding
	}
	var created store.Campaign
	// Not retried: a create whose answer is lost would be a second
	// campaign, which the model does not know.
	code, err := w.adminDo("POST", "/api/integrations/"+w.c.integ.ID.String()+"/campaigns", body, &created)
	if err != nil || code != http.StatusCreated {
		if err == nil && code < 500 {
			w.t.Errorf("create campaign: %d", code)
			return
		}
		if cp := w.adoptCampaign(body["name"].(string), recipients); cp != nil && excluded {
			cp.window = true // maybe set: removed when the faults stop
			cp.excludes = []soakExclusion{{date: today, from: time.Now()}}
		}
		return
	}
	cp := &soakCampaign{id: created.ID, added: map[string]bool{}, window: excluded}
	if excluded {
		cp.excludes = []soakExclusion{{date: today, from: time.Now()}}
	}
	for _, r := range recipients {
		phone := r["phoneNumber"].(string)
		cp.phones = append(cp.phones, phone)
		cp.added[phone] = true
	}
	w.campaigns = append(w.campaigns, cp)
	w.fault("campaign_create")
}

// upload adds recipients, sometimes repeating some already sent (a
// retried upload): those are duplicates and add nothing.
func (w *soakWorld) upload(cp *soakCampaign) {
	recipients := w.nextCampaignPhones(1 + w.rng.IntN(5))
	if len(cp.phones) > 0 && w.rng.IntN(3) == 0 {
		recipients = append(recipients, map[string]any{"phoneNumber": cp.phones[w.rng.IntN(len(cp.phones))]})
	}
	w.uploadRecipients(cp, recipients)
	w.fault("campaign_upload")
}

func (w *soakWorld) uploadRecipients(cp *soakCampaign, recipients []map[string]any) {
	for _, r := range recipients {
		if phone := r["phoneNumber"].(string); !slices.Contains(cp.phones, phone) {
			cp.phones = append(cp.phones, phone)
		}
	}
	var answer uploadAnswer
	code := w.retryAdmin("POST", "/api/campaigns/"+cp.id.String()+"/recipients", recipients, &answer)
	switch {
	case code == http.StatusOK:
		for _, r := range recipients {
			cp.added[r["phoneNumber"].(string)] = true
		}
		if len(answer.Rejected) > 0 {
			w.t.Errorf("upload to campaign %s: rejected %+v", cp.id, answer.Rejected)
		}
	case code == http.StatusConflict && cp.cancelAsked:
		// A cancelled campaign takes no recipients.
	case code >= 500 || code == 0:
	default:
		w.t.Errorf("upload to campaign %s: %d", cp.id, code)
	}
}

func (w *soakWorld) pauseCampaign(cp *soakCampaign, pause bool) {
	action := map[bool]string{true: "pause", false: "resume"}[pause]
	code := w.retryAdmin("POST", "/api/campaigns/"+cp.id.String()+"/"+action, nil, nil)
	switch {
	case code == http.StatusOK:
		cp.paused, cp.pauseUnsure = pause, false
	case code == http.StatusConflict:
		// Completed or cancelled meanwhile; or an earlier answer was
		// lost and it is already so.
		cp.paused, cp.pauseUnsure = pause && !cp.cancelAsked, false
	case code >= 500 || code == 0:
		cp.pauseUnsure = true
	}
	w.fault("campaign_" + action)
}

func (w *soakWorld) cancelCampaign(cp *soakCampaign) {
	cp.cancelAsked = true
	code := w.retryAdmin("POST", "/api/campaigns/"+cp.id.String()+"/cancel", nil, nil)
	if code == http.StatusOK && !cp.cancelled {
		cp.cancelled, cp.cancelledAt = true, time.Now()
		w.mu.Lock()
		w.cancels = append(w.cancels, soakCancel{campaign: cp.id, at: cp.cancelledAt})
		w.mu.Unlock()
	}
	w.fault("campaign_cancel")
}

// patchCampaign reports whether the change was acknowledged.
func (w *soakWorld) patchCampaign(cp *soakCampaign, change map[string]any) bool {
	code := w.retryAdmin("PATCH", "/api/campaigns/"+cp.id.String(), change, nil)
	if code != http.StatusOK && code != http.StatusConflict && code < 500 && code != 0 {
		w.t.Errorf("PATCH campaign %s %v: %d", cp.id, change, code)
	}
	return code == http.StatusOK
}

// endCampaignFaults is what the operator does when the faults stop: paused
// campaigns are resumed and calling windows of their own removed, so that
// every campaign can finish.
func (w *soakWorld) endCampaignFaults() {
	for _, cp := range w.campaigns {
		if cp.paused || cp.pauseUnsure {
			if code := w.retryAdmin("POST", "/api/campaigns/"+cp.id.String()+"/resume", nil, nil); code != http.StatusOK &&
				code != http.StatusConflict {
				w.t.Fatalf("resume campaign %s: %d", cp.id, code)
			}
			cp.paused, cp.pauseUnsure = false, false
		}
		if cp.window {
			cp.windowChanging()
			if code := w.retryAdmin("PATCH", "/api/campaigns/"+cp.id.String(), map[string]any{"callingWindow": nil}, nil); code != http.StatusOK {
				w.t.Fatalf("remove the calling window of campaign %s: %d", cp.id, code)
			}
			cp.window = false
		}
	}
}

// campaignsOpen counts the integration's campaigns not yet completed or
// cancelled.
func (w *soakWorld) campaignsOpen() int {
	var n int
	if err := w.c.env.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM campaigns
		WHERE integration_id = $1 AND status NOT IN ('completed', 'cancelled')`, w.c.integ.ID).Scan(&n); err != nil {
		return -1
	}
	return n
}

// checkCampaigns: every campaign ended completed, or cancelled when its
// cancel was acknowledged; every acknowledged recipient is one call of
// it, and no number twice; its progress counts its calls' statuses.
func (w *soakWorld) checkCampaigns() {
	t := w.t
	type campaignCall struct {
		id      uuid.UUID
		phone   string
		status  string
		outcome string
		slot    bool
	}
	for _, cp := range w.campaigns {
		rows, err := w.c.env.Store.Pool().Query(context.Background(), `SELECT id, phone_number, status, COALESCE(outcome, ''),
			slot_taken_at IS NOT NULL FROM calls WHERE campaign_id = $1`, cp.id)
		if err != nil {
			t.Fatal(err)
		}
		var calls []campaignCall
		for rows.Next() {
			var k campaignCall
			if err := rows.Scan(&k.id, &k.phone, &k.status, &k.outcome, &k.slot); err != nil {
				t.Fatal(err)
			}
			calls = append(calls, k)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		var got store.Campaign
		if code := w.retryAdmin("GET", "/api/campaigns/"+cp.id.String(), nil, &got); code != http.StatusOK {
			t.Fatalf("get campaign %s: %d", cp.id, code)
		}
		switch {
		case cp.cancelled && got.Status != "cancelled":
			t.Errorf("campaign %s is %s; its cancel was acknowledged", cp.id, got.Status)
		case !cp.cancelAsked && got.Status != "completed":
			t.Errorf("campaign %s is %s once every call is over, want completed", cp.id, got.Status)
		case got.Status != "completed" && got.Status != "cancelled":
			t.Errorf("campaign %s is %s once every call is over", cp.id, got.Status)
		}
		seen := map[string]int{}
		var want store.CampaignProgress
		for _, k := range calls {
			seen[k.phone]++
			if !slices.Contains(cp.phones, k.phone) {
				t.Errorf("campaign %s has a call to %s, which was never uploaded", cp.id, k.phone)
			}
			want.Total++
			switch {
			case k.status == "queued":
				want.Queued++
			case k.status == "retry_scheduled":
				want.RetryScheduled++
			case k.status == "waiting_postcall":
				want.WaitingPostcall++
			case k.status == "completed":
				want.Completed++
			case k.status == "failed":
				want.Failed++
			case k.outcome == callstate.OutcomeSuppressed:
				want.Suppressed++
			case k.status == "cancelled":
				want.Cancelled++
			}
			if k.slot {
				want.Active++
			}
		}
		for phone, n := range seen {
			if n > 1 {
				t.Errorf("campaign %s has %d calls to %s", cp.id, n, phone)
			}
		}
		for phone := range cp.added {
			if seen[phone] == 0 {
				t.Errorf("campaign %s: the acknowledged recipient %s is no call", cp.id, phone)
			}
		}
		if got.Progress != want {
			t.Errorf("campaign %s progress %+v, its calls say %+v", cp.id, got.Progress, want)
		}
	}
}
