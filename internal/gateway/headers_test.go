package gateway

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestSharedHeadersMatchCopy: a request that shares the caller's headers
// (set-header steps applied to the proxy's copy, in Rewrite) reaches the
// backend with exactly the headers it gets when it takes its own copy first.
func TestSharedHeadersMatchCopy(t *testing.T) {
	validate := `<validate-jwt header-name="Authorization" failed-validation-httpcode="401">
  <openid-config url="https://login.microsoftonline.com/` + tid + `/v2.0/.well-known/openid-configuration" />
  <audiences><audience>` + aud + `</audience></audiences>
</validate-jwt>`
	policies := []struct {
		name   string
		xml    string
		shared bool // the route can share (given a plain request)
	}{
		{"no steps", wrap(``), true},
		{"set-header only", wrap(`<set-header name="X-Tag" exists-action="override"><value>1</value></set-header>`), true},
		{"validate only", wrap(validate), true},
		{"set-header after validate", wrap(validate + `
<set-header name="clientid" exists-action="override"><value>` + appID + `</value></set-header>
<set-header name="X-Correlation-Id" exists-action="override"><value>mine</value></set-header>
<set-header name="x-multi" exists-action="append"><value>a</value><value>b</value></set-header>
<set-header name="X-Skip" exists-action="skip"><value>new</value></set-header>
<set-header name="Accept" exists-action="delete" />`), true},
		{"set-header before validate", wrap(`<set-header name="X-Tag" exists-action="override"><value>1</value></set-header>` + validate), false},
		{"set-header of X-Forwarded-For", wrap(validate + `<set-header name="x-forwarded-for" exists-action="delete" />`), false},
		{"set-header of User-Agent", wrap(`<set-header name="User-Agent" exists-action="delete" />`), false},
	}
	requests := []struct {
		name   string
		hdr    map[string]string
		shares bool
	}{
		{"plain", map[string]string{"X-Skip": "old", "Accept": "text/plain", "X-Forwarded-For": "10.0.0.9"}, true},
		{"forged identity", map[string]string{"X-Wif-Client-Id": "forged", "x-wif-roles": "Admin"}, false},
		{"Connection naming headers", map[string]string{"Connection": "X-Wif-Tenant-Id, X-Skip, clientid", "X-Skip": "old"}, false},
	}
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			e := startGateway(t, p.xml, nil)
			if got := !e.gw.routes[0].copyHeaders; got != p.shared {
				t.Errorf("route shares headers: %v, want %v", got, p.shared)
			}
			for _, rq := range requests {
				t.Run(rq.name, func(t *testing.T) {
					send := func(forceCopy bool) http.Header {
						saved := e.gw.routes[0].copyHeaders
						e.gw.routes[0].copyHeaders = saved || forceCopy
						defer func() { e.gw.routes[0].copyHeaders = saved }()
						hdr := map[string]string{"Authorization": "Bearer " + e.v1(t, nil), "X-Correlation-Id": "corr-1"}
						for k, v := range rq.hdr {
							hdr[k] = v
						}
						r := e.do(t, "GET", "/x", hdr)
						if r.status != 200 {
							t.Fatalf("status %d: %s", r.status, r.body)
						}
						got, _ := e.backend.lastRequest()
						h := got.Header.Clone()
						h.Del("Authorization") // a fresh token each time
						return h
					}
					shared, copied := send(false), send(true)
					if !reflect.DeepEqual(shared, copied) {
						t.Errorf("backend headers differ:\nshared %v\ncopied %v", fmt.Sprint(shared), fmt.Sprint(copied))
					}
					if copied.Get(HeaderCorrelationID) != "corr-1" {
						t.Errorf("correlation id missing: %v", copied)
					}
					if strings.Contains(p.xml, "validate-jwt") && copied.Get(HeaderClientID) != appID {
						t.Errorf("identity headers missing: %v", copied)
					}
				})
			}
		})
	}
}
