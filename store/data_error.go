package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsDataError reports an error Postgres gave about the values themselves
// (SQLSTATE class 22, data exception: U+0000 in text or jsonb, invalid
// UTF-8, a value out of range or of the wrong form). Writing the same
// values again fails the same way, so it is permanent.
func IsDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && len(pgErr.Code) == 5 && pgErr.Code[:2] == "22"
}
