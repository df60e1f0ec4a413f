package store

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// listQuery builds the WHERE and LIMIT clauses of a list with numbered
// parameters.
type listQuery struct {
	where []string
	args  []any
}

// filter adds a condition on v; cond holds one %d for v's parameter.
func (q *listQuery) filter(cond string, v any) {
	q.args = append(q.args, v)
	q.where = append(q.where, fmt.Sprintf(cond, len(q.args)))
}

// conditions is the WHERE clause's body.
func (q *listQuery) conditions() string { return strings.Join(q.where, " AND ") }

// page is the LIMIT and OFFSET clause; it comes last in the statement.
func (q *listQuery) page(limit, offset int) string {
	q.args = append(q.args, limit, offset)
	return fmt.Sprintf(" LIMIT $%d OFFSET $%d", len(q.args)-1, len(q.args))
}

// collect is pgx.CollectRows (no rows: an empty list, written [] in
// JSON) for the store's row scanners, which take a pgx.Row.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}
