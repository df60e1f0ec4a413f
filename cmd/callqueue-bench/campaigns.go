package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// campaignUpload measures POST /api/campaigns/{id}/recipients with a
// 10,000-row CSV (number, external id, two variables), three uploads into
// fresh campaigns; the figure is rows per second of the whole request.
func (b *bench) campaignUpload(ctx context.Context) error {
	const rows, uploads = 10000, 3
	w, err := b.newWorld(ctx, "campaign_upload")
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, token, err := w.startIdle(ctx, "api", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	client := load.NewClient(2)
	base := "http://" + svc.Addr() + "/api/"
	var total time.Duration
	for u := range uploads {
		var campaign store.Campaign
		if err := adminJSON(client, token, "POST", base+"integrations/"+in.ID.String()+"/campaigns",
			map[string]any{"name": fmt.Sprintf("upload %d", u)}, &campaign); err != nil {
			return err
		}
		var csv strings.Builder
		csv.WriteString("phone_number,external_id,client_name,company\n")
		for i := range rows {
			fmt.Fprintf(&csv, "+38067%07d,lead-%d,Client %d,Company %d\n", u*rows+i, i, i, i%100)
		}
		req, _ := http.NewRequest("POST", base+"campaigns/"+campaign.ID.String()+"/recipients", strings.NewReader(csv.String()))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "text/csv")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		var res struct {
			Added int `json:"added"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		total += time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || res.Added != rows {
			return fmt.Errorf("upload: %d, added %d (%w)", resp.StatusCode, res.Added, err)
		}
	}
	metric("campaign_upload_rows_per_s", float64(rows*uploads)/total.Seconds(), "rows/s")
	return nil
}

func adminJSON(client *http.Client, token, method, url string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, got)
	}
	return json.Unmarshal(got, out)
}

// campaignDispatch measures a freed slot (call_end received) → the next
// campaign call's originate at the VA, with ten running campaigns holding
// 100,000 queued recipients between them and every slot of the
// integration's 10 busy: each freed slot is shared out among the ten lanes.
// With -caller-ids, two more configurations of the same world are
// measured, the three alternating in rounds: a pool of that many caller
// numbers under the local strategy, each with its own limits (what
// choosing a number costs a claim), and that pool with the integration's
// dial rate and contact caps on every recipient (every pacing rule at once,
// none binding; contract §9). samples is per configuration.
func (b *bench) campaignDispatch(ctx context.Context) error {
	const campaigns, perCampaign, limit, samples = 10, 10000, 10, 600
	w, err := b.newWorld(ctx, "campaign_dispatch")
	if err != nil {
		return err
	}
	defer w.close()
	va := newFakeVA(limit)
	defer va.Close()
	if _, err := w.start(ctx, "api", true, nil); err != nil { // migrates; dials nothing
		return err
	}
	in, _, err := w.setupIntegration(ctx, "", va.URL, fmt.Sprintf(`{"concurrency_limit": %d}`, limit))
	if err != nil {
		return err
	}
	now := time.Now()
	for c := range campaigns {
		camp, err := w.st.CreateCampaign(ctx, "bench", in.ID, store.CampaignSpec{Name: fmt.Sprintf("c%d", c), Priority: 5}, now)
		if err != nil {
			return err
		}
		recipients := make([]store.Recipient, perCampaign)
		for i := range recipients {
			recipients[i] = store.Recipient{PhoneNumber: fmt.Sprintf("+3806%d%07d", c, i)}
		}
		if _, _, err := w.st.AddRecipients(ctx, "bench", camp.ID, recipients, now); err != nil {
			return err
		}
	}
	if _, err := w.st.Pool().Exec(ctx, `ANALYZE calls`); err != nil {
		return err
	}
	svc, err := w.start(ctx, "all", false, nil)
	if err != nil {
		return err
	}
	client := load.NewClient(4)
	base := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/"
	var live []vaCall
	for range limit {
		select {
		case c := <-va.arrived:
			live = append(live, c)
		case <-time.After(30 * time.Second):
			return fmt.Errorf("the first %d dials did not arrive", limit)
		}
	}
	if b.callerIDs <= 0 {
		return measureFreedSlots(client, base, in.WebhookToken, va, live, samples, "campaign_dispatch")
	}
	// A pool of Ukrainian numbers of several area codes (the recipients'
	// country) and others; claims read it from the config on every claim.
	pool := make([]map[string]any, b.callerIDs)
	for i := range pool {
		number := fmt.Sprintf("+3804%d%07d", 1+i%7, i)
		if i%5 == 4 {
			number = fmt.Sprintf("+1415555%04d", i)
		}
		pool[i] = map[string]any{"number": number, "sip_id": fmt.Sprintf("sip-%d", i), "concurrency_limit": 2,
			"per_second": 100, "max_per_hour": 10000, "max_per_day": 100000}
	}
	plainVoice := map[string]any{"provider": "va", "base_url": va.URL, "sip_id": "sip-1", "assistant_id": "a-1"}
	pooledVoice := map[string]any{"provider": "va", "base_url": va.URL, "sip_id": "sip-1", "assistant_id": "a-1",
		"caller_ids": pool, "caller_id_strategy": "local"}
	plainHandling := map[string]any{"concurrency_limit": limit}
	// Every pacing rule at once, none of them binding: the integration's
	// dial rate, the pool, and contact caps every recipient is judged by.
	pacedHandling := map[string]any{"concurrency_limit": limit, "dial_rate": map[string]any{"per_second": 500, "burst": 100},
		"contact_caps": []map[string]any{{"max_dials": 7, "days": 7}, {"max_dials": 3, "days": 1}}}
	phases := []struct {
		name            string
		voice, handling map[string]any
	}{
		{"campaign_dispatch", plainVoice, plainHandling},
		{"campaign_dispatch_caller_ids", pooledVoice, plainHandling},
		{"campaign_dispatch_paced", pooledVoice, pacedHandling},
	}
	// The phases alternate in rounds, so that the machine's other load
	// and the tables' warming weigh on each alike.
	const rounds = 3
	lat := make([][]time.Duration, len(phases))
	for range rounds {
		for i, ph := range phases {
			if err := putConfigs(ctx, w, in.ID, map[string]map[string]any{config.KeyVoice: ph.voice,
				config.KeyCallHandling: ph.handling}); err != nil {
				return fmt.Errorf("%s: %w", ph.name, err)
			}
			n := samples / rounds
			got, more, err := freedSlots(client, base, in.WebhookToken, va, live, func(k int) bool { return k < n })
			if err != nil {
				return fmt.Errorf("%s: %w", ph.name, err)
			}
			lat[i], live = append(lat[i], got...), more
		}
	}
	for i, ph := range phases {
		slices.Sort(lat[i])
		metric(ph.name+"_p50_ms", load.MS(load.Percentile(lat[i], 0.50)), "ms")
		metric(ph.name+"_p99_ms", load.MS(load.Percentile(lat[i], 0.99)), "ms")
	}
	metric("campaign_dispatch_paced_vs_plain_p99", load.Percentile(lat[2], 0.99).Seconds()/load.Percentile(lat[0], 0.99).Seconds(), "ratio")
	if v := va.violations.Load(); v != 0 {
		return fmt.Errorf("campaign_dispatch run saw %d limit violations", v)
	}
	return nil
}

// putConfigs stores each config key's value, normalized as the admin API
// would store it.
func putConfigs(ctx context.Context, w *world, integrationID uuid.UUID, values map[string]map[string]any) error {
	for key, value := range values {
		raw, err := json.Marshal(value)
		if err != nil {
			return err
		}
		if raw, err = config.Normalize(key, raw); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if err := w.st.PutConfig(ctx, store.ActorCLI, integrationID, key, raw); err != nil {
			return err
		}
	}
	return nil
}

// windowSweep measures the scheduler's periodic work (due retries, calls
// whose window opened, integrations with ready calls) while 100,000
// recipients wait for a calling window that opens in two hours.
func (b *bench) windowSweep(ctx context.Context) error {
	const recipients, ticks = 100000, 200
	w, err := b.newWorld(ctx, "window_sweep")
	if err != nil {
		return err
	}
	defer w.close()
	if _, err := w.start(ctx, "api", true, nil); err != nil {
		return err
	}
	in, _, err := w.setupIntegration(ctx, "", "http://127.0.0.1:1", `{"concurrency_limit": 10}`)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	window := fmt.Sprintf(`{"timezone": "UTC", "start": %q, "end": %q}`, now.Add(2*time.Hour).Format("15:04"), now.Add(3*time.Hour).Format("15:04"))
	for c := range recipients / 10000 {
		camp, err := w.st.CreateCampaign(ctx, "bench", in.ID, store.CampaignSpec{Name: fmt.Sprintf("w%d", c), Priority: 5,
			Handling: map[string]json.RawMessage{"calling_window": json.RawMessage(window)}}, now)
		if err != nil {
			return err
		}
		list := make([]store.Recipient, 10000)
		for i := range list {
			list[i] = store.Recipient{PhoneNumber: fmt.Sprintf("+3806%d%07d", c, i)}
		}
		if _, _, err := w.st.AddRecipients(ctx, "bench", camp.ID, list, now); err != nil {
			return err
		}
	}
	if _, err := w.st.Pool().Exec(ctx, `ANALYZE calls`); err != nil {
		return err
	}
	var waiting int
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM calls WHERE not_before IS NOT NULL`).Scan(&waiting); err != nil || waiting != recipients {
		return fmt.Errorf("%d recipients wait for their window, want %d (%w)", waiting, recipients, err)
	}
	var lat []time.Duration
	for range ticks {
		start := time.Now()
		if _, err := w.st.RequeueDue(ctx, uuid.Nil, 500); err != nil {
			return err
		}
		if _, err := w.st.ReleaseWindows(ctx, time.Now(), 5000); err != nil {
			return err
		}
		if _, err := w.st.IntegrationsWithQueued(ctx); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	metric("window_sweep_ms", load.MS(load.Percentile(lat, 0.99)), "ms")
	metric("window_sweep_p50_ms", load.MS(load.Percentile(lat, 0.50)), "ms")
	return nil
}
