package sts_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/apply"
	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/sts"
	"github.com/wif-project/wif/internal/wiftest"
)

// BenchmarkScaleExchanges is the rest of the scale benchmark: on SQLite and
// PostgreSQL, with 1,000 and with N identities (WIF_BENCH_IDENTITIES,
// default 100,000) in the same run, the exchange throughput and
// client-seen p99 of 32 HTTP/2 clients in a separate load-generator
// process, and the propagation of one change (a new identity) to a second
// replica on the same store under a trickle of 10 other changes a second.
//
//	go test -run '^$' -bench ScaleExchanges -benchtime 1x -timeout 1h ./internal/sts/
func BenchmarkScaleExchanges(b *testing.B) {
	big := 100_000
	if v, err := strconv.Atoi(os.Getenv("WIF_BENCH_IDENTITIES")); err == nil && v > 0 {
		big = v
	}
	for _, o := range sts.ScaleStores() {
		for _, n := range []int{1000, big} {
			b.Run(fmt.Sprintf("%s/%d", o.Name, n), func(b *testing.B) {
				for range b.N {
					scaleRun(b, o.Open(b), n)
				}
			})
		}
	}
}

func scaleRun(b *testing.B, st store.Store, n int) {
	ctx := context.Background()
	a := wiftest.Start(b, wiftest.WithStore(st))
	if _, err := apply.Apply(ctx, st, sts.ScaleDocument(n, a.TenantID, a.Issuer.URL), apply.Options{}); err != nil {
		b.Fatal(err)
	}
	a.CreateResourceApp(b, "api://bench", 2)
	t0 := time.Now()
	a.Changed(b)
	b.ReportMetric(time.Since(t0).Seconds(), "reload-s")

	// Exchanges of one identity in the middle of the directory.
	mid := fmt.Sprintf("workload-%07d", n/2)
	m, err := st.GetManagedIdentity(ctx, a.TenantID, store.IdentityRef{SubscriptionID: "00000000-0000-0000-0000-000000000000", ResourceGroup: fmt.Sprintf("rg-%02d", (n/2)%100), Name: mid})
	if err != nil {
		b.Fatal(err)
	}
	body := wiftest.ExchangeForm(m.ClientID, a.Issuer.Mint(b, "system:serviceaccount:ns:"+mid, directory.DefaultAudience, 2*time.Hour), "api://bench/.default").Encode()
	bodyFile := filepath.Join(b.TempDir(), "body")
	if err := os.WriteFile(bodyFile, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	endpoint := a.URL + "/" + a.TenantID + "/oauth2/v2.0/token"
	runLoad(b, endpoint, bodyFile, a.CAFile, 8, 0.5) // warm up
	r := runLoad(b, endpoint, bodyFile, a.CAFile, 32, 3)
	b.ReportMetric(float64(r.OK)/r.Seconds, "exchanges/s")
	b.ReportMetric(r.P99, "p99-ms")

	// A second replica on the same store; a trickle of 10 changes a
	// second; then one change whose arrival on the replica is timed.
	r2 := wiftest.Start(b, wiftest.WithStore(st), wiftest.WithTenantID(a.TenantID), wiftest.WithIssuerHTTPClient(a.Issuer.Server.Client()))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			k := rand.IntN(n)
			ref := store.IdentityRef{SubscriptionID: "00000000-0000-0000-0000-000000000000", ResourceGroup: fmt.Sprintf("rg-%02d", k%100), Name: fmt.Sprintf("workload-%07d", k)}
			_, _ = st.UpdateManagedIdentity(ctx, a.TenantID, ref, func(m *directory.ManagedIdentity) error {
				m.Tags = map[string]string{"trickle": strconv.Itoa(i)}
				return nil
			})
		}
	}()
	time.Sleep(2 * time.Second) // the trickle is on
	late, err := st.CreateManagedIdentity(ctx, directory.ManagedIdentity{TenantID: a.TenantID, SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup: "rg-late", Name: "late-arrival", ClientID: directory.NewID(), PrincipalID: directory.NewID()})
	if err != nil {
		b.Fatal(err)
	}
	written := time.Now()
	if _, err := st.CreateFederatedCredential(ctx, directory.FederatedCredential{TenantID: a.TenantID, ParentKind: directory.ParentManagedIdentity,
		ParentClientID: late.ClientID, ID: directory.NewID(), Name: "k8s", Issuer: a.Issuer.URL, Subject: "system:serviceaccount:ns:late-arrival",
		Audiences: []string{directory.DefaultAudience}}); err != nil {
		b.Fatal(err)
	}
	assertion := a.Issuer.Mint(b, "system:serviceaccount:ns:late-arrival", directory.DefaultAudience, time.Hour)
	for {
		if res := r2.Post(b, "/"+a.TenantID+"/oauth2/v2.0/token", wiftest.ExchangeForm(late.ClientID, assertion, "api://bench/.default")); res.Status == 200 {
			break
		}
		if time.Since(written) > 2*time.Minute {
			b.Fatal("the change did not reach the second replica in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(time.Since(written).Seconds(), "propagation-s")
	close(stop)
	<-done
}

// runLoad runs the load generator process (TestLoadgenChild) against
// endpoint with HTTP/2.
func runLoad(b *testing.B, endpoint, bodyFile, caFile string, clients int, secs float64) loadResult {
	b.Helper()
	return loadgen(b, endpoint, bodyFile, caFile, "h2", clients, 0, secs)
}
