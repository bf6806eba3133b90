package main

import (
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestOK","Output":"    a_test.go:3: chatter\n"}`,
		`{"Action":"pass","Package":"p/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"p/a","Test":"TestBad","Output":"    a_test.go:9: got 1, want 2\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}`,
		`{"Action":"fail","Package":"p/a","Test":"TestBad"}`,
		`{"Action":"output","Package":"p/a","Test":"TestKube","Output":"--- SKIP: TestKube (0.00s)\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestKube","Output":"    kube_test.go:81: kube-apiserver is missing: run hack/kube-bin.sh\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestKube"}`,
		`{"Action":"output","Package":"p/a","Output":"FAIL\tp/a\t0.1s\n"}`,
		`# p/b`,
		`{"Action":"fail","Package":"p/a"}`,
	}, "\n")
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := "    a_test.go:9: got 1, want 2\n--- FAIL: TestBad (0.00s)\nFAIL\tp/a\t0.1s\n# p/b\n\n1 test(s) skipped:\n  p/a TestKube: kube-apiserver is missing: run hack/kube-bin.sh\n"
	if out.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
