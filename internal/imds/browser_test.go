package imds

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawGet sends a request line and headers exactly as given (a browser's
// Host included) and returns the status and body.
func rawRequest(t *testing.T, base, request string) (int, string) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowserRequestsRefused sends what a web page in the workload's
// browser can send after rebinding its own name to the endpoint's address:
// its own Host name. Only the names a workload uses are answered.
func TestBrowserRequestsRefused(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AllowedHosts = []string{"wif-imds.default.svc"} })
	port := strings.TrimPrefix(f.url, "http://127.0.0.1:")
	imdsReq := func(host string, extra ...string) string {
		return fmt.Sprintf("GET %s?api-version=2018-02-01&resource=api%%3A%%2F%%2Fa HTTP/1.1\r\nHost: %s\r\nMetadata: true\r\n%sConnection: close\r\n\r\n",
			IMDSTokenPath, host, strings.Join(extra, ""))
	}
	for _, tc := range []struct {
		name, request string
		status        int
		says          string
	}{
		{"rebound page name", imdsReq("evil.example:" + port), 403, `the Host \"evil.example:` + port + `\" is not accepted`},
		{"rebound page name, App Service", fmt.Sprintf("GET %s?api-version=2019-08-01&resource=a HTTP/1.1\r\nHost: attacker.test\r\n%s: %s\r\nConnection: close\r\n\r\n", AppServiceTokenPath, IdentityHeaderName, testHeader), 403, "DNS rebinding"},
		{"no Host", "GET " + IMDSTokenPath + "?resource=a HTTP/1.0\r\nMetadata: true\r\n\r\n", 403, "is not accepted"},
		{"forwarded by a proxy", imdsReq("127.0.0.1:"+port, "X-Forwarded-For: 10.0.0.1\r\n"), 400, "X-Forwarded-For"},
		{"Forwarded header", imdsReq("127.0.0.1:"+port, "Forwarded: for=10.0.0.1\r\n"), 400, "Forwarded"},
		{"IP literal", imdsReq("127.0.0.1:" + port), 200, "access_token"},
		{"metadata address", imdsReq("169.254.169.254"), 200, "access_token"},
		{"IPv6 literal", imdsReq("[::1]:" + port), 200, "access_token"},
		{"localhost", imdsReq("LocalHost:" + port), 200, "access_token"},
		{"allowed name", imdsReq("wif-imds.default.svc:8000"), 200, "access_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawRequest(t, f.url, tc.request)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %s, want %d saying %q", status, body, tc.status, tc.says)
			}
		})
	}
}

// TestAppService2017AndMSIPost: the protocols az and msrestazure speak —
// App Service 2017-09-01 (header secret, parameter clientid, expires_on as
// a date) and the form POST to MSI_ENDPOINT.
func TestAppService2017AndMSIPost(t *testing.T) {
	f := newFixture(t, nil)
	// msrestazure joins MSI_ENDPOINT and "/?resource=" (a trailing slash).
	a := f.get(t, AppServiceTokenPath+"/?resource=https://management.core.windows.net/&api-version=2017-09-01&clientid="+testClientID,
		map[string]string{"secret": testHeader})
	if a.status != 200 {
		t.Fatalf("2017-09-01: %d %s", a.status, a.body)
	}
	m := a.json(t)
	want := t0.Add(3599 * time.Second).UTC().Format("01/02/2006 15:04:05 -07:00")
	if m["expires_on"] != want || m["resource"] != "https://management.core.windows.net/" || m["token_type"] != "Bearer" ||
		m["client_id"] != testClientID || !strings.HasSuffix(m["access_token"].(string), "https://management.core.windows.net//.default") {
		t.Fatalf("2017-09-01 answer %v (expires_on want %q)", m, want)
	}
	if _, err := time.Parse("01/02/2006 15:04:05 -07:00", m["expires_on"].(string)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hdr    map[string]string
		status int
		says   string
	}{
		{nil, 401, "the Secret header is missing: send the value of MSI_SECRET"},
		{map[string]string{"secret": "wrong"}, 401, "does not match this endpoint's MSI_SECRET"},
		{map[string]string{IdentityHeaderName: testHeader}, 401, "Secret header is missing"},
	} {
		a := f.get(t, AppServiceTokenPath+"?resource=x&api-version=2017-09-01", tc.hdr)
		if a.status != tc.status || !strings.Contains(a.body, tc.says) {
			t.Errorf("%v: %d %s", tc.hdr, a.status, a.body)
		}
	}
	if a := f.get(t, AppServiceTokenPath+"?resource=x&api-version=2017-09-01&clientid=other", map[string]string{"secret": testHeader}); a.status != 400 || !strings.Contains(a.body, "is not this workload's identity") {
		t.Errorf("clientid of another identity: %d %s", a.status, a.body)
	}

	post := func(body string, hdr map[string]string) answer {
		req, _ := http.NewRequest("POST", f.url+AppServiceTokenPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{status: resp.StatusCode, body: string(b)}
	}
	a = post("resource=https%3A%2F%2Fmanagement.core.windows.net%2F&client_id="+testClientID, metadata)
	if a.status != 200 {
		t.Fatalf("POST: %d %s", a.status, a.body)
	}
	m = a.json(t)
	if m["expires_on"] != fmt.Sprint(t0.Add(3599*time.Second).Unix()) || m["token_type"] != "Bearer" || m["resource"] != "https://management.core.windows.net/" {
		t.Fatalf("POST answer %v", m)
	}
	if a := post("resource=x", nil); a.status != 400 || !strings.Contains(a.body, "Metadata: true") {
		t.Errorf("POST without Metadata: %d %s", a.status, a.body)
	}
	if a := post(strings.Repeat("x", 20<<10), metadata); a.status != 400 || !strings.Contains(a.body, "at most 16384 bytes") {
		t.Errorf("oversized POST: %d %s", a.status, a.body)
	}
	checkNoProblems(t, f.sts)
}
