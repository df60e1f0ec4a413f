package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pipeline sends statements of a transaction that need no answer in
// between as one round trip (a pgx.Batch): they run in the order queued,
// and the first to fail ends the send with its step's name. A transaction
// of several set-based statements then costs a few round trips whatever
// its size, however many steps it has.
type pipeline struct {
	batch pgx.Batch
	steps []pipelineStep
}

type pipelineStep struct {
	name string
	// scan reads the statement's rows; nil for a statement whose rows
	// are not wanted.
	scan func(pgx.Rows) error
}

// exec queues a statement whose answer is not read.
func (p *pipeline) exec(name, sql string, args ...any) {
	p.batch.Queue(sql, args...)
	p.steps = append(p.steps, pipelineStep{name: name})
}

// query queues a statement whose rows scan reads, one call per row.
func (p *pipeline) query(name string, scan func(pgx.Rows) error, sql string, args ...any) {
	p.batch.Queue(sql, args...)
	p.steps = append(p.steps, pipelineStep{name: name, scan: scan})
}

// then queues q's statements after p's.
func (p *pipeline) then(q *pipeline) {
	for i, qq := range q.batch.QueuedQueries {
		p.batch.Queue(qq.SQL, qq.Arguments...)
		p.steps = append(p.steps, q.steps[i])
	}
}

// batchSender runs a batch: a transaction, or the pool (the batch is then
// one implicit transaction).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// send runs the queued statements on tx and empties p.
func (p *pipeline) send(ctx context.Context, tx batchSender) error {
	if len(p.steps) == 0 {
		return nil
	}
	batch, steps := &pgx.Batch{QueuedQueries: p.batch.QueuedQueries}, p.steps
	p.batch, p.steps = pgx.Batch{}, nil
	br := tx.SendBatch(ctx, batch)
	for _, st := range steps {
		var err error
		if st.scan == nil {
			_, err = br.Exec()
		} else {
			err = scanRows(br, st.scan)
		}
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return br.Close()
}

func scanRows(br pgx.BatchResults, scan func(pgx.Rows) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
