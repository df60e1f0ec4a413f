package store_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store/storetest"
)

// Ids sent as their 16 bytes (store.RegisterTypes) reach Postgres as the
// same uuids their text names: alone, in arrays, through pointers, nil.
func TestUUIDParameters(t *testing.T) {
	s, _ := storetest.NewStore(t)
	id, other := uuid.New(), uuid.New()
	var text string
	if err := s.Pool().QueryRow(t.Context(), `SELECT $1::uuid::text`, id).Scan(&text); err != nil || text != id.String() {
		t.Fatalf("uuid: %q, %v; want %q", text, err, id)
	}
	var texts []*string
	if err := s.Pool().QueryRow(t.Context(), `SELECT array_agg(u::text ORDER BY n) FROM unnest($1::uuid[]) WITH ORDINALITY AS v (u, n)`,
		[]*uuid.UUID{&id, nil, &other}).Scan(&texts); err != nil {
		t.Fatal(err)
	}
	if len(texts) != 3 || texts[0] == nil || *texts[0] != id.String() || texts[1] != nil || texts[2] == nil || *texts[2] != other.String() {
		t.Fatalf("uuid[] of pointers: %v", texts)
	}
	var nilText string
	if err := s.Pool().QueryRow(t.Context(), `SELECT ($1::uuid[])[1]::text`, []uuid.UUID{uuid.Nil}).Scan(&nilText); err != nil ||
		nilText != uuid.Nil.String() {
		t.Fatalf("uuid.Nil: %q, %v", nilText, err)
	}
}
