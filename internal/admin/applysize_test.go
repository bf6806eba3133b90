package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wif-project/wif/internal/admin"
	"github.com/wif-project/wif/internal/store/memory"
)

// A directory document over the server's bound is a 413 naming the switch,
// not a truncated parse.
func TestApplySizeBound(t *testing.T) {
	h, err := admin.NewHandler(admin.Config{Store: memory.New(), Authorizer: &admin.TokenAuthorizer{AllowLoopback: true}, MaxApplyBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/admin/directory?dryRun=true", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("tenants: []\n"); st != 200 {
		t.Fatalf("a small document: %d %s", st, body)
	}
	st, body := post("tenants: []\n" + strings.Repeat("# padding\n", 30))
	if st != 413 || !strings.Contains(body, "larger than the 200 bytes this server takes (wif serve --max-apply-bytes)") {
		t.Fatalf("a large document: %d %s", st, body)
	}
}
