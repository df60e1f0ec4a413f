package crm_test

import (
	"reflect"
	"testing"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
)

// A CRM's answer is kept (the call's history, the agent's variables)
// without what Postgres cannot store: CRM exports do hold U+0000.
func TestVariablesDropTextPostgresCannotStore(t *testing.T) {
	t.Parallel()
	rec := &crm.Record{ID: "r1", Name: "Олена\x00", Fields: map[string]any{
		"Company": "ACME\x00 Ltd", "Source": map[string]any{"label": []any{"Face\x00book", 3.0}}, "Phone": "+380991234567"}}
	got := crm.Variables(rec, config.CRMFields{"name": "Name", "company": "Company", "source": "Source", "phone": "Phone"})
	want := map[string]any{"client_name": "Олена", "company": "ACME Ltd", "lead_source": map[string]any{"label": []any{"Facebook", 3.0}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Variables = %#v, want %#v", got, want)
	}
}
