package sts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// auditWriter queues audit records and writes them in batches off the
// request path: no exchange waits on a store write. On a clean stop every
// queued record is written. When the store cannot take them, batches go to
// a local spool (when configured) and are replayed, in order and without
// duplicates, once it can — at start too, for a replica restarted during
// an outage. When the queue is full (the writer far behind) or the spool
// is, new records are dropped and counted; with refuseWhenFull the token
// endpoint refuses exchanges instead while the spool is full.
type auditWriter struct {
	store   store.AuditStore
	queue   chan store.AuditRecord
	log     *slog.Logger
	metrics *metrics
	spool   *spool // nil: no spool, records the store refuses are lost

	// full is set while the spool is full (records are being dropped).
	full atomic.Bool

	// agg counts repeated successes (nil: every record is written whole).
	agg *auditAggregator
	// sink, when set, receives every record whole, before aggregation
	// (--audit-sink).
	sink recordSink
	// now is the clock for closing aggregation minutes.
	now func() time.Time

	// flushReq asks run to write what is queued now.
	flushReq chan chan error
	// mu guards stopped: after run returns, add writes nothing.
	mu      sync.RWMutex
	stopped bool
}

const (
	auditBatchSize      = 500
	auditFlushInterval  = 200 * time.Millisecond
	auditReplayInterval = time.Second
)

func newAuditWriter(s store.AuditStore, buffer int, sp *spool, log *slog.Logger, m *metrics) *auditWriter {
	return &auditWriter{store: s, queue: make(chan store.AuditRecord, buffer), spool: sp, log: log, metrics: m, flushReq: make(chan chan error),
		agg: newAuditAggregator(), now: time.Now}
}

// recordSink receives every audit record whole (JSON lines for a log
// shipper, say); it must not block for long.
type recordSink interface {
	Write(r store.AuditRecord)
}

// multiSink writes to each of several sinks.
type multiSink []recordSink

func (m multiSink) Write(r store.AuditRecord) {
	for _, s := range m {
		s.Write(r)
	}
}

func (m multiSink) Close() {
	for _, s := range m {
		closeSink(s)
	}
}

// closeSink flushes and stops a sink that batches (the OTLP sink).
func closeSink(s recordSink) {
	if c, ok := s.(interface{ Close() }); ok {
		c.Close()
	}
}

// take puts one record into the batch, or into an aggregate.
func (a *auditWriter) take(batch []store.AuditRecord, r store.AuditRecord) []store.AuditRecord {
	if a.sink != nil {
		a.sink.Write(r)
	}
	if a.agg != nil && a.agg.absorb(r) {
		a.metrics.auditAggregated.Inc()
		return batch
	}
	return append(batch, r)
}

func (a *auditWriter) add(r store.AuditRecord) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.stopped {
		a.metrics.auditDropped.Inc()
		return
	}
	if r.ID == "" {
		// The id is fixed now, so a batch replayed twice (spool) is
		// recognised as already stored.
		r.ID = directory.NewID()
	}
	select {
	case a.queue <- r:
	default:
		a.metrics.auditDropped.Inc()
	}
}

// write stores a batch: in the store, or behind what is spooled (to keep
// the order), or in the spool when the store refuses it.
func (a *auditWriter) write(ctx context.Context, batch []store.AuditRecord) error {
	if len(batch) == 0 {
		return nil
	}
	if a.spool == nil || a.spool.empty() {
		err := a.store.AppendAudit(ctx, batch)
		if err == nil {
			return nil
		}
		if a.spool == nil {
			a.metrics.auditDropped.Add(float64(len(batch)))
			a.log.Error("audit write failed; records lost (no audit spool is configured)", "records", len(batch), "error", err)
			return fmt.Errorf("write %d audit records: %w", len(batch), err)
		}
		a.log.Warn("the store refused audit records; spooling them locally until it is back", "records", len(batch), "error", err)
	}
	switch err := a.spool.append(batch); {
	case errors.Is(err, errSpoolFull):
		if !a.full.Swap(true) {
			a.log.Error("the audit spool is full: audit records are being dropped until the store is back (see --audit-spool-max-bytes, --audit-refuse-when-full)", "spool_bytes", a.spool.size())
		}
		a.metrics.auditDropped.Add(float64(len(batch)))
		return err
	case err != nil:
		a.metrics.auditDropped.Add(float64(len(batch)))
		a.log.Error("writing the audit spool failed; records lost", "records", len(batch), "error", err)
		return err
	}
	a.metrics.auditSpooled.Add(float64(len(batch)))
	return nil
}

// replay moves spooled records to the store while it takes them.
func (a *auditWriter) replay(ctx context.Context) {
	if a.spool == nil || a.spool.empty() {
		return
	}
	n, err := a.spool.replay(ctx, a.store, auditBatchSize)
	a.metrics.auditReplayed.Add(float64(n))
	switch {
	case err != nil && n > 0:
		a.log.Warn("replayed part of the audit spool; the rest waits for the store", "records", n, "error", err)
	case err != nil:
		a.log.Debug("the store still refuses the spooled audit records", "error", err)
	default:
		a.log.Info("replayed the audit spool into the store", "records", n)
	}
	if a.spool.empty() && a.full.Swap(false) {
		a.log.Info("the audit spool has room again: audit records are kept again")
	}
}

// run writes batches until ctx ends, then drains the queue.
func (a *auditWriter) run(ctx context.Context) {
	t := time.NewTicker(auditFlushInterval)
	defer t.Stop()
	a.replay(ctx) // what a previous run spooled
	lastReplay := time.Now()
	batch := make([]store.AuditRecord, 0, auditBatchSize)
	write := func(wctx context.Context) error {
		err := a.write(wctx, batch)
		batch = batch[:0]
		return err
	}
	drain := func(wctx context.Context) error {
		var firstErr error
		for {
			select {
			case r := <-a.queue:
				batch = a.take(batch, r)
				if len(batch) == auditBatchSize {
					if err := write(wctx); err != nil && firstErr == nil {
						firstErr = err
					}
				}
			default:
				if a.agg != nil {
					batch = append(batch, a.agg.due(a.now(), true)...)
				}
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
			batch = a.take(batch, r)
			if len(batch) == auditBatchSize {
				_ = write(ctx)
			}
		case <-t.C:
			if a.agg != nil {
				batch = append(batch, a.agg.due(a.now(), false)...)
			}
			_ = write(ctx)
			if time.Since(lastReplay) >= auditReplayInterval {
				a.replay(ctx)
				lastReplay = time.Now()
			}
		case done := <-a.flushReq:
			err := drain(ctx)
			a.replay(ctx)
			if err == nil && a.spool != nil && !a.spool.empty() {
				err = errors.New("audit records are spooled: the store does not take them yet")
			}
			done <- err
		case <-ctx.Done():
			a.mu.Lock()
			a.stopped = true
			a.mu.Unlock()
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = drain(wctx)
			a.replay(wctx)
			cancel()
			if a.spool != nil {
				a.spool.close()
			}
			if a.sink != nil {
				closeSink(a.sink)
			}
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
