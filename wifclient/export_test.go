package wifclient

import (
	"context"
	"time"
)

// SetSleep replaces the wait after a 429, so tests need not sleep.
func SetSleep(t *Transport, sleep func(context.Context, time.Duration) error) { t.sleep = sleep }
