package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/tokenauth"
)

// TestConcurrentStartConvergesOnOneKey starts replicas at the same instant
// on an empty database, five times: each time, every token of every
// replica names a kid that every replica's JWKS holds.
func TestConcurrentStartConvergesOnOneKey(t *testing.T) {
	c := startCluster(t)
	f := newFixture(t)
	for round := range 5 {
		dsn := c.newDatabase(fmt.Sprintf("start%d", round))
		rs := make([]*replica, 3)
		for i := range rs {
			rs[i] = f.launch(fmt.Sprintf("r%d-%d", round, i), dsn)
		}
		for _, r := range rs {
			f.waitReady(r)
		}
		for _, from := range rs {
			tok, resp, err := f.workloadToken(from, "")
			if err != nil || tok == "" {
				t.Fatalf("round %d: token from %s: %v %d %s", round, from.name, err, resp.status, resp.body)
			}
			kid := kidOf(t, tok)
			for _, at := range rs {
				kids, err := f.jwksKIDs(at)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(kids, kid) {
					t.Fatalf("round %d: a token of %s names kid %s, which %s does not publish (%v)", round, from.name, kid, at.name, kids)
				}
			}
		}
		for _, r := range rs {
			r.stop(t)
		}
	}
}

// load sends exchanges to the replicas until stop is closed, each with a
// unique correlation id; it counts answers by status.
type load struct {
	mu     sync.Mutex
	ok     []string // correlation ids answered 200
	failed map[string]int
	n      atomic.Int64
	done   chan struct{}
}

func (f *fixture) runLoad(rs []*replica, stop chan struct{}, prefix string) *load {
	l := &load{failed: map[string]int{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				corr := fmt.Sprintf("%s-%d-%06d", prefix, i, l.n.Add(1))
				tok, resp, err := f.workloadToken(r, corr)
				l.mu.Lock()
				switch {
				case err != nil:
					l.failed[r.name+": "+err.Error()]++
				case tok == "":
					l.failed[fmt.Sprintf("%s: %d %s", r.name, resp.status, resp.body)]++
				default:
					l.ok = append(l.ok, corr)
				}
				l.mu.Unlock()
			}
		}()
	}
	go func() { <-stop; wg.Wait(); close(l.done) }()
	return l
}

func (l *load) wait() { <-l.done }

// TestStoreOutage stops the PostgreSQL cluster under load: exchanges keep
// answering, admin writes answer 503 with Retry-After, readiness goes
// false and liveness stays true; a replica stopped and started again
// during the outage keeps its spooled records; when the store is back
// every exchange answered is in the audit log, once.
func TestStoreOutage(t *testing.T) {
	c := startCluster(t)
	f := newFixture(t)
	dsn := c.newDatabase("outage")
	a, b := f.startReplica("a", dsn), f.startReplica("b", dsn)
	adminTok := f.adminToken(a)

	stop := make(chan struct{})
	l := f.runLoad([]*replica{a, b}, stop, "outage")
	time.Sleep(500 * time.Millisecond)
	c.stop("fast")
	time.Sleep(2 * time.Second) // exchanges during the outage
	identity := admin.IdentityPath(f.tenant, "00000000-0000-0000-0000-000000000000", "rg", "made-in-outage")
	resp, err := a.do("PUT", identity, map[string]string{"Authorization": "Bearer " + adminTok, "Content-Type": "application/json"}, strings.NewReader(`{"location":"x"}`))
	if err != nil || resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(string(resp.body), `"ServiceUnavailable"`) {
		t.Errorf("an admin write during the outage: %v %d %v %s", err, resp.status, resp.header, resp.body)
	}
	if resp, _ := a.do("GET", "/readyz", nil, nil); resp.status != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage: %d %s", resp.status, resp.body)
	}
	if resp, _ := a.do("GET", "/healthz", nil, nil); resp.status != http.StatusOK {
		t.Errorf("healthz during the outage: %d", resp.status)
	}
	// Replica b stops cleanly during the outage: its queue goes to its spool.
	close(stop)
	l.wait()
	b.stop(t)
	c.start()
	b2 := f.startReplica("b", dsn) // same spool directory: replays at start
	_ = b2
	l.mu.Lock()
	ok, failed := append([]string(nil), l.ok...), l.failed
	l.mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("exchanges failed during the outage: %v", failed)
	}
	if len(ok) < 20 {
		t.Fatalf("only %d exchanges answered", len(ok))
	}
	// Every answered exchange is audited once, after the store is back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen, dup := f.auditCorrelations(t, a, adminTok, "outage-")
		missing := 0
		for _, id := range ok {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 && len(dup) == 0 {
			t.Logf("%d exchanges answered during the test, all audited once", len(ok))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answered exchanges missing from the audit log, %d duplicated", missing, len(ok), len(dup))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The admin API works again.
	resp, err = a.do("PUT", identity, map[string]string{"Authorization": "Bearer " + adminTok, "Content-Type": "application/json"}, strings.NewReader(`{"location":"x"}`))
	if err != nil || resp.status != http.StatusCreated {
		t.Errorf("an admin write after the outage: %v %d %s", err, resp.status, resp.body)
	}
}

// auditCorrelations pages through the tenant's audit log and returns the
// correlation ids with prefix seen, and those seen more than once.
func (f *fixture) auditCorrelations(t *testing.T, r *replica, token, prefix string) (map[string]bool, []string) {
	t.Helper()
	seen := map[string]bool{}
	var dup []string
	path := admin.TenantPath(f.tenant) + "/auditLogs?$top=1000&result=success"
	for path != "" {
		resp, err := r.do("GET", path, map[string]string{"Authorization": "Bearer " + token}, nil)
		if err != nil || resp.status != 200 {
			t.Fatalf("audit list: %v %d %s", err, resp.status, resp.body)
		}
		var page admin.List[admin.AuditResource]
		if err := json.Unmarshal(resp.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Value {
			if strings.HasPrefix(rec.CorrelationID, prefix) {
				if seen[rec.CorrelationID] {
					dup = append(dup, rec.CorrelationID)
				}
				seen[rec.CorrelationID] = true
			}
		}
		path = strings.TrimPrefix(page.NextLink, "https://"+publicHost)
	}
	return seen, dup
}

// TestKillAReplicaUnderLoad: SIGKILL of one replica costs the others
// nothing.
func TestKillAReplicaUnderLoad(t *testing.T) {
	c := startCluster(t)
	f := newFixture(t)
	dsn := c.newDatabase("kill")
	a, b, victim := f.startReplica("a", dsn), f.startReplica("b", dsn), f.startReplica("victim", dsn)
	stop := make(chan struct{})
	l := f.runLoad([]*replica{a, b}, stop, "kill")
	time.Sleep(500 * time.Millisecond)
	victim.kill(t)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	l.wait()
	if len(l.failed) > 0 || len(l.ok) < 20 {
		t.Fatalf("with a replica killed: %d answered, failures %v", len(l.ok), l.failed)
	}
	t.Logf("%d exchanges at the surviving replicas, none failed", len(l.ok))
}

// TestKeyRotationUnderLoad rotates the signing key while two replicas
// issue tokens and a validator in front of each (tokenauth, refreshing
// its key set every second, as a gateway does hourly against a 48 h
// pre-publication) checks every token from either replica: zero failed
// validations, before, during and after the switch.
func TestKeyRotationUnderLoad(t *testing.T) {
	c := startCluster(t)
	f := newFixture(t)
	dsn := c.newDatabase("rotation")
	extra := []string{"--key-pre-publish", "8s", "--key-rotation-period", "1h"}
	a, b := f.startReplica("a", dsn, extra...), f.startReplica("b", dsn, extra...)
	adminTok := f.adminToken(a)
	validators := map[string]*tokenauth.Validator{}
	for _, r := range []*replica{a, b} {
		disc := tokenauth.NewDiscovery(tokenauth.DiscoveryOptions{HTTPClient: r.client, RefreshInterval: time.Second, MinRefetchInterval: time.Second})
		t.Cleanup(disc.Close)
		v, err := tokenauth.New(tokenauth.Config{
			KeySets:   []tokenauth.KeySet{disc.KeySet("https://" + publicHost + "/" + f.tenant + "/v2.0/.well-known/openid-configuration")},
			Issuers:   []string{"https://" + publicHost + "/" + f.tenant + "/", "https://" + publicHost + "/" + f.tenant + "/v2.0"},
			Audiences: []string{"api://api", f.apiAppID(t, a, adminTok)},
		})
		if err != nil {
			t.Fatal(err)
		}
		validators[r.name] = v
	}
	var validated, failures atomic.Int64
	var failMu sync.Mutex
	var firstFailures []string
	kids := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, from := range []*replica{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, resp, err := f.workloadToken(from, "")
				if err != nil || tok == "" {
					failures.Add(1)
					failMu.Lock()
					firstFailures = append(firstFailures, fmt.Sprintf("exchange at %s: %v %d %s", from.name, err, resp.status, resp.body))
					failMu.Unlock()
					continue
				}
				kids.Store(kidOf(t, tok), true)
				for name, v := range validators {
					if _, err := v.Validate(context.Background(), tok); err != nil {
						failures.Add(1)
						failMu.Lock()
						if len(firstFailures) < 5 {
							firstFailures = append(firstFailures, fmt.Sprintf("a token of %s at the validator of %s: %v", from.name, name, err))
						}
						failMu.Unlock()
						continue
					}
					validated.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	resp, err := a.do("POST", "/admin/signingKeys/rotate", map[string]string{"Authorization": "Bearer " + adminTok}, nil)
	if err != nil || resp.status != http.StatusCreated {
		t.Fatalf("rotate: %v %d %s", err, resp.status, resp.body)
	}
	time.Sleep(12 * time.Second) // past the switch (8 s)
	close(stop)
	wg.Wait()
	n := 0
	kids.Range(func(any, any) bool { n++; return true })
	if failures.Load() > 0 {
		t.Fatalf("%d failures across the rotation (of %d validations): %v", failures.Load(), validated.Load(), firstFailures)
	}
	if n < 2 {
		t.Fatalf("tokens were signed by %d key(s): the rotation did not switch keys under load", n)
	}
	t.Logf("%d validations across the rotation, tokens of %d keys, none failed", validated.Load(), n)
}

// apiAppID is the appId of api://api (the v2 tokens' audience).
func (f *fixture) apiAppID(t *testing.T, r *replica, token string) string {
	t.Helper()
	resp, err := r.do("GET", admin.TenantPath(f.tenant)+"/applications", map[string]string{"Authorization": "Bearer " + token}, nil)
	if err != nil || resp.status != 200 {
		t.Fatalf("list applications: %v %d %s", err, resp.status, resp.body)
	}
	var apps admin.List[admin.ApplicationResource]
	_ = json.Unmarshal(resp.body, &apps)
	for _, a := range apps.Value {
		if slices.Contains(a.IdentifierURIs, "api://api") {
			return a.AppID
		}
	}
	t.Fatal("no api://api application")
	return ""
}

// TestKillSQLiteMidApply: SIGKILL of a SQLite server while it applies a
// large document and takes single writes loses no write it acknowledged,
// leaves a store it reopens, and a second apply converges.
func TestKillSQLiteMidApply(t *testing.T) {
	f := newFixture(t)
	db := "sqlite:" + filepath.Join(f.dir, "wif.db")
	srv := f.startReplica("sqlite", db)
	token := f.adminToken(srv)
	auth := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	var doc strings.Builder
	fmt.Fprintf(&doc, "tenants:\n- id: %s\n  displayName: faults\n  managedIdentities:\n", f.tenant)
	for i := range 3000 {
		fmt.Fprintf(&doc, "  - name: bulk-%04d\n    resourceGroup: bulk\n    federatedCredentials:\n    - {name: k8s, issuer: https://k8s.example, subject: \"system:serviceaccount:ns:sa-%d\"}\n", i, i)
	}
	var acked []string
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("acked-%04d", i)
			resp, err := srv.do("PUT", admin.IdentityPath(f.tenant, "00000000-0000-0000-0000-000000000000", "single", name), auth, strings.NewReader(`{"location":"x"}`))
			if err == nil && resp.status == http.StatusCreated {
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		_, _ = srv.do("POST", "/admin/directory", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/yaml"}, strings.NewReader(doc.String()))
	}()
	time.Sleep(700 * time.Millisecond)
	srv.kill(t)
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	srv = f.startReplica("sqlite-again", db)
	token = f.adminToken(srv)
	auth["Authorization"] = "Bearer " + token
	for _, name := range acked {
		resp, err := srv.do("GET", admin.IdentityPath(f.tenant, "00000000-0000-0000-0000-000000000000", "single", name), auth, nil)
		if err != nil || resp.status != http.StatusOK {
			t.Fatalf("acknowledged identity %s is gone after the kill: %v %d", name, err, resp.status)
		}
	}
	resp, err := srv.do("POST", "/admin/directory", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/yaml"}, strings.NewReader(doc.String()))
	if err != nil || resp.status != http.StatusOK {
		t.Fatalf("re-apply after the kill: %v %d %.300s", err, resp.status, resp.body)
	}
	resp, err = srv.do("POST", "/admin/directory?dryRun=true", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/yaml"}, strings.NewReader(doc.String()))
	if err != nil || resp.status != http.StatusOK || !strings.Contains(string(resp.body), `"changes": []`) && !strings.Contains(string(resp.body), `"changes": null`) {
		t.Fatalf("a third plan is not empty: %v %d %.300s", err, resp.status, resp.body)
	}
	t.Logf("%d single writes acknowledged before the kill, all kept; the apply converged", n)
}
