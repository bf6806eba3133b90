package rules

import (
	"errors"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

func TestURIKey(t *testing.T) {
	for in, want := range map[string]string{
		"api://Provider-API":        "api://provider-api",
		"https://contoso.example/":  "https://contoso.example",
		"https://contoso.example//": "https://contoso.example",
		"api://x":                   "api://x",
		"/":                         "/",
	} {
		if got := URIKey(in); got != want {
			t.Errorf("URIKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimes(t *testing.T) {
	ny := time.FixedZone("EST", -5*3600)
	in := time.Date(2026, 1, 2, 3, 4, 5, 678912345, ny)
	got := Time(in)
	if got.Location() != time.UTC || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Errorf("Time(%v) = %v", in, got)
	}
	if !Time(time.Time{}).IsZero() || Micros(time.Time{}) != 0 || !FromMicros(0).IsZero() {
		t.Error("the zero time does not round-trip as zero")
	}
	if back := FromMicros(Micros(got)); !back.Equal(got) || back.Location() != time.UTC {
		t.Errorf("FromMicros(Micros(%v)) = %v", got, back)
	}
}

func TestNextMetaAlwaysMovesForward(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMeta(t0)
	for _, now := range []time.Time{t0, t0.Add(-time.Hour), t0.Add(time.Second)} {
		n := NextMeta(m, now)
		if n.Version != m.Version+1 || !n.CreatedAt.Equal(t0) || !n.UpdatedAt.After(m.UpdatedAt) {
			t.Errorf("NextMeta(%+v, %v) = %+v", m, now, n)
		}
		m = n
	}
}

func TestAuditCursor(t *testing.T) {
	c := Cursor(1_700_000_000_123_456, 42)
	q, err := ParseAuditFilter(store.AuditFilter{After: c, Limit: 5000})
	if err != nil || !q.HasCursor || q.AfterUS != 1_700_000_000_123_456 || q.AfterSeq != 42 || q.Limit != MaxAuditLimit {
		t.Errorf("ParseAuditFilter(cursor %q) = %+v, %v", c, q, err)
	}
	if q, _ := ParseAuditFilter(store.AuditFilter{}); q.Limit != DefaultAuditLimit || q.HasCursor {
		t.Errorf("default filter: %+v", q)
	}
	for _, bad := range []string{"x", "YTE6MQ", Cursor(1, 2) + "=", "!!", "YTI6MToy"} {
		_, err := ParseAuditFilter(store.AuditFilter{After: bad})
		if !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("cursor %q: error %v, want directory.ErrInvalid", bad, err)
		}
	}
}

func TestImmutableFields(t *testing.T) {
	now := time.Now().UTC()
	old := directory.FederatedCredential{
		TenantID: directory.NewID(), ParentKind: directory.ParentManagedIdentity, ParentClientID: directory.NewID(),
		ID: directory.NewID(), Name: "cred", Issuer: "https://i.example", Subject: "s", Audiences: []string{"a"}, Meta: NewMeta(now),
	}
	f := old
	f.Name, f.ID = "other", directory.NewID()
	_, err := UpdatedCredential(old, f, now)
	var ves directory.ValidationErrors
	if !errors.As(err, &ves) || len(ves) != 2 || ves[0].Field != "id" || ves[1].Field != "name" {
		t.Errorf("changing id and name: %v", err)
	}
	// A change of letter case in an id is no change.
	f = old
	f.ParentClientID = "  "
	if _, err := UpdatedCredential(old, f, now); !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("blanking the parent: %v", err)
	}
}

// FuzzParseAuditCursor feeds arbitrary cursors (they come from API
// callers) to the filter parser: it must never panic, must reject what it
// cannot read with a validation error, and must read back what it wrote.
func FuzzParseAuditCursor(f *testing.F) {
	f.Add(Cursor(0, 0))
	f.Add(Cursor(1_700_000_000_000_000, 12345))
	f.Add("YTE6LTE6LTE")
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, c string) {
		q, err := ParseAuditFilter(store.AuditFilter{After: c})
		if err != nil {
			if !errors.Is(err, directory.ErrInvalid) {
				t.Fatalf("cursor %q: error %v is not a validation error", c, err)
			}
			return
		}
		if c != "" && !q.HasCursor {
			t.Fatalf("cursor %q accepted but not read", c)
		}
		if q.HasCursor {
			again, err := ParseAuditFilter(store.AuditFilter{After: Cursor(q.AfterUS, q.AfterSeq)})
			if err != nil || again.AfterUS != q.AfterUS || again.AfterSeq != q.AfterSeq {
				t.Fatalf("cursor %q does not round-trip: %+v %v", c, again, err)
			}
		}
	})
}
