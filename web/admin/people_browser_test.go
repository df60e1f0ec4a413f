package admin_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestConsolePeople: the configuration tab sets the storage mode and the
// retention; the People page finds a number's calls and suppressions and,
// after a confirmation, erases them; the Suppressions tab then shows the
// entry as erased, without its number or a way to remove it blindly.
func TestConsolePeople(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("People", c.va, nil)
	const number = "+380991230077"
	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=configuration")
	b.signIn(c.admin.Token)
	form := `#config-data`
	b.until("the personal data form", `document.querySelector('`+form+`') !== null`)
	b.run("no content", chromedp.SetValue(form+` select[name="store"]`, "no_content", chromedp.ByQuery))
	b.fill(form+` input[name="retention_days"]`, "90")
	b.click(form + ` button[type="submit"]`)
	var data map[string]any
	servicetest.Eventually(t, waitFor, "the data config saved", func() bool {
		c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/config/data", nil, &data)
		return data["store"] == "no_content" && data["retention_days"] == float64(90)
	})

	call := originate(t, c, in, number)
	waitStatus(t, c, call.String(), "initiated")
	endCall(t, c, in, call.String()+".1")
	if code := c.admin.Do("POST", "/api/integrations/"+in.ID.String()+"/suppressions", map[string]any{"phoneNumber": number}, nil); code != 201 {
		t.Fatalf("suppress: %d", code)
	}

	b.open("/admin/people")
	b.fill(`input[name="phone"]`, number)
	b.click(`form[aria-labelledby="people-h"] button[type="submit"]`)
	b.until("the document", `document.querySelector('#person-summary')?.textContent.includes('1 call(s), 1 suppression(s)') &&
		document.querySelector('#person-document').textContent.includes('`+call.String()+`')`)
	b.click(`#erase-person`)
	b.click(`dialog[open] button[value="ok"]`)
	b.until("erased", `document.querySelector('#person-summary')?.textContent.includes('0 call(s), 1 suppression(s)') &&
		document.querySelector('#person-document').textContent.includes('"erased": true')`)
	var list []store.Suppression
	if c.admin.Do("GET", "/api/integrations/"+in.ID.String()+"/suppressions", nil, &list); len(list) != 1 || !list[0].Erased {
		t.Fatalf("suppressions after erasure %+v", list)
	}
	b.open("/admin/integrations/" + in.ID.String() + "?tab=suppressions")
	b.until("the erased entry", `document.querySelector('#suppressions-list tbody tr[data-erased="true"]')?.cells[0].textContent === 'erased' &&
		!document.querySelector('#suppressions-list').textContent.includes('`+number+`') &&
		document.querySelector('#suppressions-list tbody tr[data-erased="true"] button') === null`)
}
