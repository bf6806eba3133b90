package devenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// LockFile in the state directory is held (flock) by the running wif dev;
// it records the holder's pid and start time.
const LockFile = "dev.lock"

// ErrAlreadyRunning is returned by Start when another wif dev holds the
// state directory.
var ErrAlreadyRunning = errors.New("wif dev is already running on this state directory")

// lockStateDir takes the state directory's lock, or says who holds it. The
// lock goes with the process (a crash releases it); unlock releases it.
func lockStateDir(dir string, now time.Time) (unlock func() error, err error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := tryLock(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			holder = describeHolder(string(b))
		}
		f.Close()
		return nil, fmt.Errorf("%w (%s%s): stop it first, or give this one another --state-dir", ErrAlreadyRunning, dir, holder)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\nstarted %s\n", os.Getpid(), now.UTC().Format(time.RFC3339))), 0)
	}
	return func() error {
		_ = f.Truncate(0)
		return f.Close() // closing the descriptor releases the lock
	}, nil
}

// describeHolder renders the lock file's "pid N\nstarted T" as ", pid N,
// started T".
func describeHolder(s string) string {
	var pid, started string
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "pid "); ok {
			if _, err := strconv.Atoi(v); err == nil {
				pid = v
			}
		}
		if v, ok := strings.CutPrefix(line, "started "); ok {
			if _, err := time.Parse(time.RFC3339, v); err == nil {
				started = v
			}
		}
	}
	out := ""
	if pid != "" {
		out += ", pid " + pid
	}
	if started != "" {
		out += ", started " + started
	}
	return out
}
