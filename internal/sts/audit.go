package sts

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wif-project/wif/internal/store"
)

// auditWriter queues audit records and writes them in batches off the
// request path: no exchange waits on a store write. On a clean stop every
// queued record is written. When the queue is full (the store is down or
// far behind) new records are dropped and counted rather than blocking the
// token endpoint.
type auditWriter struct {
	store   store.AuditStore
	queue   chan store.AuditRecord
	log     *slog.Logger
	metrics *metrics

	// flushReq asks run to write what is queued now.
	flushReq chan chan error
	// mu guards stopped: after run returns, add writes nothing.
	mu      sync.RWMutex
	stopped bool
}

const (
	auditBatchSize     = 500
	auditFlushInterval = 200 * time.Millisecond
)

func newAuditWriter(s store.AuditStore, buffer int, log *slog.Logger, m *metrics) *auditWriter {
	return &auditWriter{store: s, queue: make(chan store.AuditRecord, buffer), log: log, metrics: m, flushReq: make(chan chan error)}
}

func (a *auditWriter) add(r store.AuditRecord) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.stopped {
		a.metrics.auditDropped.Inc()
		return
	}
	select {
	case a.queue <- r:
	default:
		a.metrics.auditDropped.Inc()
	}
}

// run writes batches until ctx ends, then drains the queue.
func (a *auditWriter) run(ctx context.Context) {
	t := time.NewTicker(auditFlushInterval)
	defer t.Stop()
	batch := make([]store.AuditRecord, 0, auditBatchSize)
	write := func(wctx context.Context) error {
		if len(batch) == 0 {
			return nil
		}
		err := a.store.AppendAudit(wctx, batch)
		if err != nil {
			a.metrics.auditDropped.Add(float64(len(batch)))
			a.log.Error("audit write failed; records lost", "records", len(batch), "error", err)
			err = fmt.Errorf("write %d audit records: %w", len(batch), err)
		}
		batch = batch[:0]
		return err
	}
	drain := func(wctx context.Context) error {
		var firstErr error
		for {
			select {
			case r := <-a.queue:
				batch = append(batch, r)
				if len(batch) == auditBatchSize {
					if err := write(wctx); err != nil && firstErr == nil {
						firstErr = err
					}
				}
			default:
				if err := write(wctx); err != nil && firstErr == nil {
					firstErr = err
				}
				return firstErr
			}
		}
	}
	for {
		select {
		case r := <-a.queue:
			batch = append(batch, r)
			if len(batch) == auditBatchSize {
				_ = write(ctx)
			}
		case <-t.C:
			_ = write(ctx)
		case done := <-a.flushReq:
			done <- drain(ctx)
		case <-ctx.Done():
			a.mu.Lock()
			a.stopped = true
			a.mu.Unlock()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = drain(wctx)
			cancel()
			return
		}
	}
}

// flush writes everything queued so far; it needs run to be running.
func (a *auditWriter) flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case a.flushReq <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
