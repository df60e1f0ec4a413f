package service_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/service/servicetest"
)

// chromium finds (and when missing installs) headless Chromium through
// scripts/chromium.sh, which prints its path last.
func chromium(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../scripts/chromium.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/chromium.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// specOperations lists "METHOD /path" of every operation in the OpenAPI
// document at url.
func specOperations(t *testing.T, url string) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if code := servicetest.Request(t, "GET", url, nil, nil, &doc); code != 200 {
		t.Fatalf("%s: %d", url, code)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// TestAPIDocsInBrowser renders /{slug}/docs and /api/docs in headless
// Chromium that cannot reach anything but this machine's loopback: every
// operation of each OpenAPI document is listed, every request the page
// makes goes to the service itself, and the page's Content-Security-Policy
// refuses nothing it needs.
func TestAPIDocsInBrowser(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Docs", nil, nil)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		// No network: names resolve to nothing and any other address goes
		// to a proxy that is not there. Loopback is reached directly.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.ProxyServer("http://127.0.0.1:9"),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Run(browser); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}

	origin, _ := url.Parse(in.URL)
	for _, page := range []string{"/" + integ.Slug + "/docs", "/api/docs"} {
		t.Run(page, func(t *testing.T) {
			want := specOperations(t, in.URL+strings.TrimSuffix(page, "docs")+"openapi.json")
			if len(want) < 5 {
				t.Fatalf("the document lists only %v", want)
			}
			var mu sync.Mutex
			var requests, problems []string
			tab, cancelTab := chromedp.NewContext(browser)
			chromedp.ListenTarget(tab, func(ev any) {
				mu.Lock()
				defer mu.Unlock()
				switch ev := ev.(type) {
				case *network.EventRequestWillBeSent:
					requests = append(requests, ev.Request.URL)
				case *network.EventLoadingFailed:
					problems = append(problems, "request failed: "+ev.ErrorText)
				case *cdplog.EventEntryAdded:
					if ev.Entry.Level == cdplog.LevelError || strings.Contains(ev.Entry.Text, "Content Security Policy") {
						problems = append(problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
					}
				case *runtime.EventExceptionThrown:
					problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
				case *runtime.EventConsoleAPICalled:
					if ev.Type == runtime.APITypeError {
						problems = append(problems, "console.error")
					}
				}
			})
			defer cancelTab()
			if err := chromedp.Run(tab); err != nil { // opens the tab
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(tab, 90*time.Second)
			defer cancel()

			if err := chromedp.Run(ctx, chromedp.Navigate(in.URL+page), chromedp.WaitVisible(".opblock")); err != nil {
				t.Fatalf("render %s: %v", page, err)
			}
			var listed []string
			err := chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll(".opblock")).map(b =>
				b.querySelector(".opblock-summary-method").textContent.trim() + " " +
				b.querySelector(".opblock-summary-path").getAttribute("data-path"))`, &listed))
			if err != nil {
				t.Fatalf("read %s: %v", page, err)
			}
			slices.Sort(listed)
			listed = slices.Compact(listed) // an operation with two tags is listed under each
			if !slices.Equal(listed, want) {
				t.Errorf("the page lists %d operations:\n%v\nthe document has %d:\n%v", len(listed), listed, len(want), want)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range problems {
				t.Errorf("%s: %s", page, p)
			}
			for _, r := range requests {
				u, err := url.Parse(r)
				if err != nil || (u.Scheme != "data" && u.Host != origin.Host) {
					t.Errorf("%s requested %s: not the service itself", page, r)
				}
			}
			if len(requests) < 5 { // page, 2 stylesheets, 2 scripts, the document
				t.Errorf("only %d requests seen: %v", len(requests), requests)
			}
		})
	}
}
