package service_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// laneNet is a phone network that knows which lane (campaign or webhook)
// each number belongs to, and counts each lane's live calls as the VA sees
// them: a campaign's limit must hold at the network, not only in the
// database.
type laneNet struct {
	mu      sync.Mutex
	laneOf  map[string]string // phone → lane
	live    map[string]int
	maxLive map[string]int
	order   []string // lanes in the order their originates arrived
	*phoneNet
}

func (c *cluster) laneNetwork(t *testing.T, laneOf map[string]string) *laneNet {
	n := &laneNet{laneOf: laneOf, live: map[string]int{}, maxLive: map[string]int{}, phoneNet: &phoneNet{}}
	c.va.OnRequest(func(o servicetest.Originate) {
		id, err := uuid.Parse(o.Call())
		if err != nil {
			n.fail(err)
			return
		}
		lane := n.laneOf[o.PhoneNumber]
		n.mu.Lock()
		n.live[lane]++
		n.maxLive[lane] = max(n.maxLive[lane], n.live[lane])
		n.order = append(n.order, lane)
		n.mu.Unlock()
		n.wg.Go(func() {
			if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": o.CallID}); err != nil {
				n.fail(err)
				return
			}
			time.Sleep(time.Duration(2+rand.IntN(8)) * time.Millisecond)
			n.mu.Lock()
			n.live[lane]--
			n.mu.Unlock()
			c.va.End(o.CallID)
			if err := c.callEnd(id, 30); err != nil {
				n.fail(err)
			}
		})
	})
	t.Cleanup(func() {
		c.va.OnRequest(nil)
		n.wg.Wait()
	})
	return n
}

func (n *laneNet) snapshot() (order []string, maxLive map[string]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	maxLive = map[string]int{}
	for k, v := range n.maxLive {
		maxLive[k] = v
	}
	return append([]string(nil), n.order...), maxLive
}

// campaignCSV is a 500-row upload: 480 good recipients, 10 rows with bad
// numbers or zones, and 10 that repeat earlier rows.
func campaignCSV() (body []byte, good []string) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"phone_number", "external_id", "timezone", "client_name"})
	for i := range 480 {
		phone := fmt.Sprintf("+38067%07d", i)
		good = append(good, phone)
		_ = w.Write([]string{phone, fmt.Sprintf("lead-%d", i), "", fmt.Sprintf("Client %d", i)})
	}
	for i := range 10 {
		if i%2 == 0 {
			_ = w.Write([]string{"not a number", "", "", "x"})
		} else {
			_ = w.Write([]string{fmt.Sprintf("+38067%07d", 900+i), "", "Mars/Base", "x"})
		}
	}
	for i := range 10 {
		_ = w.Write([]string{good[i], fmt.Sprintf("lead-%d", i), "", "again"})
	}
	w.Flush()
	return b.Bytes(), good
}

type uploadAnswer struct {
	Added      int `json:"added"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Row   int    `json:"row"`
		Field string `json:"field"`
	} `json:"rejected"`
}

func (c *cluster) uploadCSV(t *testing.T, campaignID uuid.UUID, body []byte) uploadAnswer {
	t.Helper()
	status, _, raw := servicetest.Send(t, http.DefaultClient, "POST", c.api.URL+"/api/campaigns/"+campaignID.String()+"/recipients",
		map[string]string{"Authorization": "Bearer " + c.admin.Token, "Content-Type": "text/csv"}, body)
	var out uploadAnswer
	if status != http.StatusOK || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("upload: %d %s", status, raw)
	}
	return out
}

func (c *cluster) campaign(t *testing.T, id uuid.UUID) store.Campaign {
	t.Helper()
	var out store.Campaign
	if code := c.admin.Do("GET", "/api/campaigns/"+id.String(), nil, &out); code != http.StatusOK {
		t.Fatalf("get campaign: %d", code)
	}
	return out
}

func (c *cluster) setIntegrationStatus(t *testing.T, status string) {
	t.Helper()
	if code := c.admin.Do("PATCH", "/api/integrations/"+c.integ.ID.String(), map[string]any{"status": status}, nil); code != http.StatusOK {
		t.Fatalf("set status %s: %d", status, code)
	}
}

// TestCampaignLifeCycle runs two campaigns and webhook calls through three
// worker processes against the fake VA: a 500-row CSV with bad rows and
// duplicates, campaign and integration limits that hold at the network,
// fair shares between the three lanes while all have calls waiting, a
// pause that stops the campaign's dials at once and a resume that carries
// on, and an export that matches the calls.
func TestCampaignLifeCycle(t *testing.T) {
	t.Parallel()
	const limit = 4
	c := startCluster(t, 3, clusterOptions{CallHandling: map[string]any{"concurrency_limit": limit}})
	c.setIntegrationStatus(t, "paused") // fill every lane before the first dial

	var big, small store.Campaign
	if code := c.admin.Do("POST", "/api/integrations/"+c.integ.ID.String()+"/campaigns",
		map[string]any{"name": "Webinar", "concurrencyLimit": 2}, &big); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	body, good := campaignCSV()
	up := c.uploadCSV(t, big.ID, body)
	if up.Added != 480 || up.Duplicates != 10 || len(up.Rejected) != 10 {
		t.Fatalf("upload: added %d, duplicates %d, rejected %d", up.Added, up.Duplicates, len(up.Rejected))
	}
	if again := c.uploadCSV(t, big.ID, body); again.Added != 0 || again.Duplicates != 490 {
		t.Fatalf("re-upload: %+v", again)
	}
	laneOf := map[string]string{}
	for _, p := range good {
		laneOf[p] = "big"
	}
	var smallList []map[string]any
	for i := range 40 {
		phone := fmt.Sprintf("+38063%07d", i)
		laneOf[phone] = "small"
		smallList = append(smallList, map[string]any{"phoneNumber": phone, "dynamicVariables": map[string]any{"n": i}})
	}
	if code := c.admin.Do("POST", "/api/integrations/"+c.integ.ID.String()+"/campaigns",
		map[string]any{"name": "Follow-up", "recipients": smallList}, &small); code != http.StatusCreated {
		t.Fatalf("create with recipients: %d", code)
	}
	for i := range 40 {
		phone := fmt.Sprintf("+38066%07d", i)
		laneOf[phone] = "webhook"
		c.mustOriginate(t, phone)
	}
	servicetest.Eventually(t, 20*time.Second, "every call queued", func() bool { return c.countStatus(t, "queued") == 560 })

	net := c.laneNetwork(t, laneOf)
	c.setIntegrationStatus(t, "active")
	servicetest.Eventually(t, 60*time.Second, "the small campaign and the webhook calls to be dialled", func() bool {
		st := c.campaign(t, small.ID).Progress
		return st.WaitingPostcall == 40 && c.countStatus(t, "waiting_postcall") >= 80
	})
	order, _ := net.snapshot()
	// While all three lanes had calls waiting, each got a third of the
	// slots, give or take what three replicas' dials in flight reorder.
	counts := map[string]int{}
	for _, lane := range order[:90] {
		counts[lane]++
	}
	for _, lane := range []string{"big", "small", "webhook"} {
		if d := counts[lane] - 30; d < -2 || d > 2 {
			t.Errorf("of the first 90 dials %s got %d, want 30 ± 2 (%v)", lane, counts[lane], counts)
		}
	}

	// Pause: no call of the campaign takes a slot after the answer (the
	// history's ids order the claims around it); its live calls finish.
	var paused store.Campaign
	if code := c.admin.Do("POST", "/api/campaigns/"+big.ID.String()+"/pause", nil, &paused); code != http.StatusOK || paused.Status != "paused" {
		t.Fatalf("pause: %d %s", code, paused.Status)
	}
	pauseMark := c.lastEventID(t)
	servicetest.Eventually(t, 20*time.Second, "the paused campaign's live calls to end", func() bool {
		return c.countCampaign(t, big.ID, "initiated", "in_progress") == 0
	})
	if queued := c.countCampaign(t, big.ID, "queued"); queued == 0 {
		t.Fatal("the campaign was dialled to the end before its pause")
	}
	resumeMark := c.lastEventID(t)
	var dialsWhilePaused int
	if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM call_events e JOIN calls k ON k.id = e.call_id
		WHERE k.campaign_id = $1 AND e.kind = 'dial' AND e.id > $2 AND e.id <= $3`, big.ID, pauseMark, resumeMark).Scan(&dialsWhilePaused); err != nil {
		t.Fatal(err)
	}
	if dialsWhilePaused != 0 {
		t.Fatalf("%d calls of the paused campaign took a slot after the pause", dialsWhilePaused)
	}

	if code := c.admin.Do("POST", "/api/campaigns/"+big.ID.String()+"/resume", nil, nil); code != http.StatusOK {
		t.Fatalf("resume: %d", code)
	}
	servicetest.Eventually(t, 5*time.Minute, "every recipient of the big campaign to be dialled", func() bool {
		return c.campaign(t, big.ID).Progress.WaitingPostcall == 480
	})
	net.check(t)
	_, maxLive := net.snapshot()
	if maxLive["big"] > 2 {
		t.Errorf("the campaign with concurrencyLimit 2 had %d calls live", maxLive["big"])
	}
	if m := c.va.MaxLive(); m > limit {
		t.Errorf("the VA had %d calls live; the integration's limit is %d", m, limit)
	}
	if n := len(c.va.Requests()); n != 560 {
		t.Errorf("the VA got %d originates for 560 calls", n)
	}

	// The export has one row per recipient, as the calls are.
	status, _, raw := servicetest.Send(t, http.DefaultClient, "GET", c.api.URL+"/api/campaigns/"+big.ID.String()+"/calls.csv",
		map[string]string{"Authorization": "Bearer " + c.admin.Token}, nil)
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if status != http.StatusOK || err != nil || len(rows) != 481 {
		t.Fatalf("export: %d %v, %d rows", status, err, len(rows))
	}
	calls := c.calls(t)
	byPhone := map[string]callRow{}
	for _, r := range calls {
		byPhone[r.Phone] = r
	}
	for i, r := range rows[1:] {
		call := byPhone[r[0]]
		if r[0] != good[i] || r[2] != fmt.Sprintf("lead-%d", i) || r[3] != call.Status || r[4] != fmt.Sprint(call.Attempt) {
			t.Fatalf("export row %d = %v, call %+v", i+1, r, call)
		}
	}
	if !strings.HasPrefix(string(raw), "phone_number,record_id,external_id,status,attempts,outcome,duration_secs,updated_at\n") {
		t.Fatalf("export header: %q", raw[:80])
	}
}

// lastEventID is the newest history row's id.
func (c *cluster) lastEventID(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT COALESCE(max(id), 0) FROM call_events`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// countCampaign counts a campaign's calls in the given statuses.
func (c *cluster) countCampaign(t *testing.T, id uuid.UUID, statuses ...string) int {
	t.Helper()
	var n int
	if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM calls WHERE campaign_id = $1 AND status = ANY($2)`,
		id, statuses).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
