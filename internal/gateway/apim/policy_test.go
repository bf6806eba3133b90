package apim

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParsePolicySample(t *testing.T) {
	pol, err := ParseFile("testdata/policysample.xml")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(pol, "", " ")
	want := `{
 "File": "policysample.xml",
 "Inbound": [
  {
   "Line": 10
  },
  {
   "Line": 12,
   "Source": {
    "HeaderName": "Authorization",
    "QueryParameterName": "",
    "TokenValue": ""
   },
   "FailedStatus": 401,
   "FailedMessage": "Call from non-approved managed identity is not allowed",
   "RequireExpiration": true,
   "RequireScheme": "Bearer",
   "ClockSkewSeconds": 0,
   "OutputTokenVariableName": "",
   "OpenIDConfigs": [
    {
     "Line": 13,
     "URL": "https://login.microsoftonline.com/d12058fe-ecf4-454a-9a69-cef5686fc24f/v2.0/.well-known/openid-configuration"
    }
   ],
   "SigningKeys": null,
   "Audiences": [
    "api://mydummyapi"
   ],
   "Issuers": [
    "https://sts.windows.net/d12058fe-ecf4-454a-9a69-cef5686fc24f/"
   ],
   "RequiredClaims": [
    {
     "Line": 21,
     "Name": "appid",
     "Match": "all",
     "Separator": "",
     "Values": [
      "ad0c8137-362f-451a-93b0-d08040425294"
     ]
    }
   ]
  },
  {
   "Line": 27,
   "Name": "clientid",
   "ExistsAction": "override",
   "Values": [
    "ad0c8137-362f-451a-93b0-d08040425294"
   ]
  }
 ],
 "Backend": [
  {
   "Line": 33
  }
 ],
 "Outbound": [
  {
   "Line": 37
  }
 ],
 "OnError": [
  {
   "Line": 41
  }
 ]
}`
	if string(got) != want {
		t.Errorf("parsed policy:\n%s\nwant:\n%s", got, want)
	}
}

func doc(inbound string) string {
	return "<policies>\n<inbound>\n" + inbound + "\n</inbound>\n</policies>"
}

const jwtOK = `<validate-jwt header-name="Authorization"><openid-config url="https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"/></validate-jwt>`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // the whole error text
	}{
		{"unknown element", doc("<foo/>"), "policy.xml:3: unknown element <foo> in <inbound>"},
		{"expression in attribute", doc(`<set-header name="x" exists-action="override"><value>@(context.Request.IpAddress)</value></set-header>`),
			`policy.xml:3: policy expressions (@(...)) are not supported: <value> text is "@(context.Request.IpAddress)"; use a literal value`},
		{"multi-statement expression", doc(`<validate-jwt token-value="@{ return &quot;x&quot;; }"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: policy expressions (@(...)) are not supported: <validate-jwt> attribute token-value is "@{ return \"x\"; }"; use a literal value`},
		{"named value", doc(`<set-header name="x"><value>{{secret}}</value></set-header>`),
			`policy.xml:3: named values ({{...}}) are not supported: <value> text is "{{secret}}"; substitute the value into the file`},
		{"unknown attribute", doc(`<validate-jwt header-name="Authorization" color="red"><openid-config url="https://a/"/></validate-jwt>`),
			"policy.xml:3: unknown attribute color on <validate-jwt> (allowed: header-name, query-parameter-name, token-value, failed-validation-httpcode, failed-validation-error-message, require-expiration-time, require-scheme, require-signed-tokens, clock-skew, output-token-variable-name)"},
		{"httpcode not a number", doc(`<validate-jwt header-name="Authorization" failed-validation-httpcode="four-oh-one"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: <validate-jwt> failed-validation-httpcode="four-oh-one": want an HTTP status code, an integer from 100 to 599`},
		{"httpcode out of range", doc(`<validate-jwt header-name="Authorization" failed-validation-httpcode="600"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: <validate-jwt> failed-validation-httpcode="600": want an HTTP status code, an integer from 100 to 599`},
		{"clock-skew not integer", doc(`<validate-jwt header-name="Authorization" clock-skew="1.5"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: <validate-jwt> clock-skew="1.5": want an integer from 0 to 86400`},
		{"bad boolean", doc(`<validate-jwt header-name="Authorization" require-expiration-time="yes"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: <validate-jwt> require-expiration-time="yes": want true or false`},
		{"unsigned tokens", doc(`<validate-jwt header-name="Authorization" require-signed-tokens="false"><openid-config url="https://a/"/></validate-jwt>`),
			`policy.xml:3: <validate-jwt> require-signed-tokens="false" is not supported: wif never accepts unsigned tokens`},
		{"two token sources", doc(`<validate-jwt header-name="Authorization" query-parameter-name="t"><openid-config url="https://a/"/></validate-jwt>`),
			"policy.xml:3: <validate-jwt> needs exactly one of header-name, query-parameter-name and token-value, got 2"},
		{"no token source", doc(`<validate-jwt><openid-config url="https://a/"/></validate-jwt>`),
			"policy.xml:3: <validate-jwt> needs exactly one of header-name, query-parameter-name and token-value, got 0"},
		{"no keys", doc(`<validate-jwt header-name="Authorization"/>`),
			"policy.xml:3: <validate-jwt> has no keys: give <openid-config url=...> or <issuer-signing-keys>"},
		{"http openid-config", doc(`<validate-jwt header-name="Authorization"><openid-config url="http://a/"/></validate-jwt>`),
			`policy.xml:3: <openid-config> url="http://a/": want an https URL`},
		{"bad match", doc(`<validate-jwt header-name="Authorization"><openid-config url="https://a/"/>
<required-claims><claim name="x" match="some"><value>1</value></claim></required-claims></validate-jwt>`),
			`policy.xml:4: <claim> match="some": want all or any`},
		{"key with two kinds", doc(`<validate-jwt header-name="Authorization"><issuer-signing-keys><key n="AQAB" e="AQAB">c2VjcmV0</key></issuer-signing-keys></validate-jwt>`),
			"policy.xml:3: <key> needs exactly one of: base64 text (symmetric), n and e (RSA), certificate-id"},
		{"duplicate audiences", doc(`<validate-jwt header-name="Authorization"><openid-config url="https://a/"/>
<audiences><audience>a</audience></audiences>
<audiences><audience>b</audience></audiences></validate-jwt>`),
			"policy.xml:5: second <audiences> in <validate-jwt> (the first is on line 4)"},
		{"bad exists-action", doc(`<set-header name="x" exists-action="replace"><value>1</value></set-header>`),
			`policy.xml:3: <set-header> exists-action="replace": want override, skip, append or delete`},
		{"delete with value", doc(`<set-header name="x" exists-action="delete"><value>1</value></set-header>`),
			`policy.xml:3: <set-header> exists-action="delete" takes no <value>`},
		{"bad header name", doc(`<set-header name="a b"><value>1</value></set-header>`),
			`policy.xml:3: <set-header> name="a b" is not a valid HTTP header name`},
		{"check-header missing attrs", doc(`<check-header name="x"><value>1</value></check-header>`),
			"policy.xml:3: <check-header> needs the failed-check-httpcode attribute\npolicy.xml:3: <check-header> needs the failed-check-error-message attribute\npolicy.xml:3: <check-header> needs the ignore-case attribute"},
		{"rate limit calls zero", doc(`<rate-limit-by-key calls="0" renewal-period="60" counter-key="client-ip"/>`),
			`policy.xml:3: <rate-limit-by-key> calls="0": want an integer from 1 to 1073741824`},
		{"rate limit expression key", doc(`<rate-limit-by-key calls="5" renewal-period="60" counter-key="@(context.Request.IpAddress)"/>`),
			`policy.xml:3: policy expressions (@(...)) are not supported: <rate-limit-by-key> attribute counter-key is "@(context.Request.IpAddress)"; use a literal value`},
		{"rate limit unknown key", doc(`<rate-limit-by-key calls="5" renewal-period="60" counter-key="subscription"/>`),
			`policy.xml:3: <rate-limit-by-key> counter-key="subscription": want one of client-ip, client-id, appid, azp, oid, sub, tid (C# expressions are not supported)`},
		{"rate limit missing period", doc(`<rate-limit-by-key calls="5" counter-key="oid"/>`),
			"policy.xml:3: <rate-limit-by-key> needs the renewal-period attribute"},
		{"validate-azure-ad-token without clients", doc(`<validate-azure-ad-token tenant-id="t"/>`),
			"policy.xml:3: <validate-azure-ad-token> needs <client-application-ids> with at least one <application-id>"},
		{"validate-jwt in outbound", "<policies>\n<outbound>\n" + jwtOK + "\n</outbound>\n</policies>",
			"policy.xml:3: unknown element <validate-jwt> in <outbound>"},
		{"text in inbound", doc("hello"), `policy.xml:2: <inbound> holds text "hello"; it takes only elements`},
		{"wrong root", "<policy/>", "policy.xml:1: root element is <policy>; a policy document starts with <policies>"},
		{"two inbound sections", "<policies>\n<inbound/>\n<inbound/>\n</policies>", "policy.xml:3: second <inbound> section (the first is on line 2)"},
		{"malformed xml", "<policies>\n<inbound>\n</policies>", "policy.xml:3: malformed XML: element <inbound> closed by </policies>"},
		{"doctype", "<!DOCTYPE x [<!ENTITY a \"b\">]>\n<policies/>", "policy.xml:1: XML directives (<!DOCTYPE ...>) are not allowed in policy documents"},
		{"namespaced", "<policies xmlns:x=\"urn:x\">\n<x:inbound/>\n</policies>",
			"policy.xml:2: element <urn:x:inbound>: XML namespaces are not used in policy documents"},
		{"several errors at once", doc("<foo/>\n<bar/>"), "policy.xml:3: unknown element <foo> in <inbound>\npolicy.xml:4: unknown element <bar> in <inbound>"},
		{"empty", "", "policy.xml: empty document: want a <policies> element"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("policy.xml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseElements(t *testing.T) {
	src := `<policies>
<inbound>
<validate-jwt query-parameter-name="access_token" failed-validation-httpcode="403" require-expiration-time="false" clock-skew="30" output-token-variable-name="jwt">
  <issuer-signing-keys>
    <key id="k1" n="` + strings.Repeat("A", 342) + `Q" e="AQAB"/>
    <key>c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U=</key>
    <key certificate-id="partner-cert"/>
  </issuer-signing-keys>
  <required-claims><claim name="scp" match="any" separator=" "><value>read</value><value>write</value></claim></required-claims>
</validate-jwt>
<validate-azure-ad-token tenant-id="72f988bf-86f1-41af-91ab-2d7cd011db47" failed-validation-error-message="nope">
  <client-application-ids><application-id>c1</application-id><application-id>c2</application-id></client-application-ids>
  <backend-application-ids><application-id>b1</application-id></backend-application-ids>
  <audiences><audience>api://x</audience></audiences>
</validate-azure-ad-token>
<check-header name="X-Tenant" failed-check-httpcode="400" failed-check-error-message="bad tenant" ignore-case="true"><value>contoso</value></check-header>
<rate-limit-by-key calls="10" renewal-period="60" counter-key="client-id" remaining-calls-header-name="x-remaining"/>
<set-header name="x-del" exists-action="delete"/>
<return-response><set-status code="418" reason="teapot"/><set-header name="x-a"><value>1</value></set-header><set-body>{"a":1}</set-body></return-response>
</inbound>
<on-error><set-header name="x-err" exists-action="append"><value>1</value><value>2</value></set-header></on-error>
</policies>`
	pol, err := Parse("p.xml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Inbound) != 6 || len(pol.OnError) != 1 {
		t.Fatalf("steps: inbound %d, on-error %d", len(pol.Inbound), len(pol.OnError))
	}
	j := pol.Inbound[0].(*ValidateJWT)
	if j.Source.QueryParameterName != "access_token" || j.FailedStatus != 403 || j.RequireExpiration || j.ClockSkewSeconds != 30 ||
		len(j.SigningKeys) != 3 || j.SigningKeys[0].ID != "k1" || j.SigningKeys[1].Symmetric == "" || j.SigningKeys[2].CertificateID != "partner-cert" ||
		j.RequiredClaims[0].Match != "any" || j.RequiredClaims[0].Separator != " " || len(j.RequiredClaims[0].Values) != 2 || j.Line != 3 {
		t.Errorf("validate-jwt = %+v", j)
	}
	a := pol.Inbound[1].(*ValidateAzureADToken)
	if a.Source.HeaderName != "Authorization" || a.FailedStatus != 401 || a.FailedMessage != "nope" || len(a.ClientApplicationIDs) != 2 ||
		a.BackendApplicationIDs[0] != "b1" || a.Audiences[0] != "api://x" || a.Line != 11 {
		t.Errorf("validate-azure-ad-token = %+v", a)
	}
	c := pol.Inbound[2].(*CheckHeader)
	if c.Name != "X-Tenant" || c.FailedStatus != 400 || !c.IgnoreCase || c.Values[0] != "contoso" {
		t.Errorf("check-header = %+v", c)
	}
	r := pol.Inbound[3].(*RateLimitByKey)
	if r.Calls != 10 || r.RenewalPeriodSeconds != 60 || r.CounterKey != "client-id" || r.IncrementCount != 1 ||
		r.RetryAfterHeaderName != "Retry-After" || r.RemainingCallsHeaderName != "x-remaining" {
		t.Errorf("rate-limit-by-key = %+v", r)
	}
	if d := pol.Inbound[4].(*SetHeader); d.ExistsAction != ActionDelete || d.Name != "x-del" {
		t.Errorf("set-header delete = %+v", d)
	}
	rr := pol.Inbound[5].(*ReturnResponse)
	if rr.Status != 418 || rr.Reason != "teapot" || rr.Body != `{"a":1}` || len(rr.Headers) != 1 {
		t.Errorf("return-response = %+v", rr)
	}
	if e := pol.OnError[0].(*SetHeader); e.ExistsAction != ActionAppend || len(e.Values) != 2 {
		t.Errorf("on-error set-header = %+v", e)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{doc(jwtOK), doc("<foo/>"), "<policies/>", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pol, err := Parse("f.xml", data)
		if err == nil && pol == nil {
			t.Fatal("nil policy without error")
		}
		if err != nil && !strings.HasPrefix(err.Error(), "f.xml") {
			t.Fatalf("error without file name: %v", err)
		}
	})
}
