// Command testsummary reads `go test -json` on standard input and prints
// what plain `go test` would — each package's result, and the output of
// the tests that failed — then a summary of the tests that were skipped
// and why, so a green run that skipped the end-to-end suites says so
// (test.sh pipes go test through it).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	outputs := map[key][]string{}
	var skipped []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (a build error printed by go itself): pass it on.
			fmt.Fprintln(out, string(line))
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package-level lines: "ok ...", "FAIL ...", panics, build errors.
				if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "PASS\n") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			outputs[k] = append(outputs[k], e.Output)
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "fail":
			if e.Test != "" {
				for _, o := range outputs[k] {
					if !strings.HasPrefix(o, "=== ") {
						fmt.Fprint(out, o)
					}
				}
			}
			delete(outputs, k)
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", strings.TrimPrefix(e.Package, "github.com/wif-project/wif/"), e.Test, reason(outputs[k])))
			}
			delete(outputs, k)
		case "pass":
			delete(outputs, k)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(skipped) == 0 {
		fmt.Fprintln(out, "No test was skipped.")
		return nil
	}
	sort.Strings(skipped)
	fmt.Fprintf(out, "\n%d test(s) skipped:\n", len(skipped))
	const max = 40
	for i, s := range skipped {
		if i == max {
			fmt.Fprintf(out, "  ... and %d more\n", len(skipped)-max)
			break
		}
		fmt.Fprintln(out, "  "+s)
	}
	return nil
}

// reason is the t.Skip message among a skipped test's output lines: the
// indented "file_test.go:NN: message" line(s) after "--- SKIP".
func reason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		if i := strings.Index(t, ".go:"); i >= 0 {
			if j := strings.Index(t[i+4:], ": "); j >= 0 {
				t = t[i+4+j+2:]
			}
		}
		msg = append(msg, t)
	}
	s := strings.Join(msg, " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(no reason given)"
	}
	return s
}
