package sts

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/wif-project/wif/internal/store"
)

// spool keeps audit records the store could not take, on local disk, until
// it can: append-only segment files of JSON lines, fsync'd after each
// batch, bounded in size. Segments are replayed oldest first; a segment is
// removed only once every record of it is in the store, and records carry
// their ids from the start, so a replay cut short by a crash replays again
// without duplicates.
type spool struct {
	dir      string
	maxBytes int64

	mu    sync.Mutex
	cur   *os.File // segment being appended to (nil until the first write)
	curN  int      // its sequence number
	bytes int64    // bytes in every segment
}

const spoolPrefix = "audit-"
const spoolSuffix = ".jsonl"

// errSpoolFull: the spool reached its size limit.
var errSpoolFull = errors.New("the audit spool is full")

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spool %s: %w", dir, err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	for _, n := range segs {
		fi, err := os.Stat(s.path(n))
		if err != nil {
			return nil, fmt.Errorf("audit spool: %w", err)
		}
		s.bytes += fi.Size()
		s.curN = max(s.curN, n)
	}
	return s, nil
}

func (s *spool) path(n int) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%012d%s", spoolPrefix, n, spoolSuffix))
}

// segments lists the segment numbers on disk, oldest first.
func (s *spool) segments() ([]int, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("audit spool %s: %w", s.dir, err)
	}
	var out []int
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, spoolPrefix) || !strings.HasSuffix(name, spoolSuffix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, spoolPrefix), spoolSuffix))
		if err == nil && n > 0 {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

// empty reports whether nothing is spooled.
func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes == 0
}

// size is the bytes spooled.
func (s *spool) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// append writes records at the end of the spool and syncs them to disk.
// When they do not fit, it writes none and returns errSpoolFull.
func (s *spool) append(records []store.AuditRecord) error {
	var buf []byte
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("audit spool: encode: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bytes+int64(len(buf)) > s.maxBytes {
		return errSpoolFull
	}
	if s.cur == nil {
		s.curN++
		f, err := os.OpenFile(s.path(s.curN), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("audit spool: %w", err)
		}
		s.cur = f
	}
	if _, err := s.cur.Write(buf); err != nil {
		return fmt.Errorf("audit spool: write: %w", err)
	}
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("audit spool: sync: %w", err)
	}
	s.bytes += int64(len(buf))
	return nil
}

// replay writes spooled records to the store, oldest segment first, in
// batches, removing each segment once all of it is stored. It stops at the
// first failure (the store is still down) and reports how many records it
// stored. New appends go to a fresh segment meanwhile.
func (s *spool) replay(ctx context.Context, st store.AuditStore, batch int) (int, error) {
	s.mu.Lock()
	if s.cur != nil { // seal the segment being written: replay reads it
		_ = s.cur.Close()
		s.cur = nil
	}
	segs, err := s.segments()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	stored := 0
	for _, n := range segs {
		recs, size, err := readSegment(s.path(n))
		if err != nil {
			return stored, err
		}
		for i := 0; i < len(recs); i += batch {
			if err := appendOnce(ctx, st, recs[i:min(i+batch, len(recs))]); err != nil {
				return stored, err
			}
			stored += min(batch, len(recs)-i)
		}
		if err := os.Remove(s.path(n)); err != nil {
			return stored, fmt.Errorf("audit spool: %w", err)
		}
		s.mu.Lock()
		s.bytes -= size
		s.mu.Unlock()
	}
	return stored, nil
}

// appendOnce writes records that may already be in the store (a replay
// cut short after the store took a batch): a batch refused as a duplicate
// is written record by record, skipping those present.
func appendOnce(ctx context.Context, st store.AuditStore, recs []store.AuditRecord) error {
	err := st.AppendAudit(ctx, recs)
	if !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	for _, r := range recs {
		if err := st.AppendAudit(ctx, []store.AuditRecord{r}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return err
		}
	}
	return nil
}

// readSegment reads a segment's records. A last line cut short by a crash
// in the middle of a write is ignored (its batch was never acknowledged).
func readSegment(path string) ([]store.AuditRecord, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("audit spool: %w", err)
	}
	defer f.Close()
	var out []store.AuditRecord
	var size int64
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		size += int64(len(line))
		if errors.Is(err, io.EOF) {
			return out, size, nil // a partial last line is dropped
		}
		if err != nil {
			return nil, 0, fmt.Errorf("audit spool %s: %w", path, err)
		}
		var r store.AuditRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, 0, fmt.Errorf("audit spool %s: a corrupt record: %w", path, err)
		}
		out = append(out, r)
	}
}

func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		_ = s.cur.Close()
		s.cur = nil
	}
}
