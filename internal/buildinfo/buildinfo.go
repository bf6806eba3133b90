// Package buildinfo says which wif this is: the version and source
// revision stamped at build time (-ldflags -X, as make image does) or, for
// go build and go install, what the Go toolchain recorded from the module
// and version control.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/wif-project/wif/internal/buildinfo.version=v1.2.3
// -X github.com/wif-project/wif/internal/buildinfo.revision=<commit>".
var (
	version  string
	revision string
)

// Info describes a build.
type Info struct {
	// Version is the release ("v1.2.3"), the module's pseudo-version for a
	// build from a checkout, or "(devel)".
	Version string `json:"version"`
	// Revision is the source commit, when known.
	Revision string `json:"revision,omitempty"`
	// Time is the commit's time (RFC 3339), when known.
	Time string `json:"time,omitempty"`
	// Modified: the checkout had uncommitted changes.
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// Get returns this binary's build information.
func Get() Info {
	return from(version, revision, debug.ReadBuildInfo)
}

func from(v, rev string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Revision: rev, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if in.Version == "" && bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Revision == "" {
					in.Revision = s.Value
				}
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true" && rev == ""
			}
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	return in
}

// String is the one-line form wif version prints.
func (in Info) String() string {
	s := "wif " + in.Version
	if in.Revision != "" {
		r := in.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		s += " (revision " + r
		if in.Time != "" {
			s += ", " + in.Time
		}
		if in.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + in.Go + " " + in.Platform
}
