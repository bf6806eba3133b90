//go:build !unix

package devenv

import "os"

// tryLock has no advisory lock to take on this platform: a second wif dev
// is caught when it fails to bind its ports instead.
func tryLock(*os.File) error { return nil }
