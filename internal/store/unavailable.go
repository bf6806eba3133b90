package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// ErrUnavailable marks a failure to reach the store (a backend may wrap
// it); IsUnavailable recognises it and the usual forms of the same thing.
var ErrUnavailable = errors.New("the store is unavailable")

// IsUnavailable reports whether err means the store could not be reached
// or could not serve right now (so the caller should answer 503 and retry),
// rather than that it refused the request: ErrUnavailable, a network
// failure (refused, reset, timed out, closed), a broken or bad connection,
// an SQLSTATE of class 08 (connection exception), 53 (insufficient
// resources) or 57P0x (server shutting down or starting), or SQLite's
// busy, locked, I/O, full and cannot-open results.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, driver.ErrBadConn),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &oe), errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, context.Canceled):
		return false
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		c := st.SQLState()
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") || strings.HasPrefix(c, "57P0")
	}
	var sc interface{ Code() int }
	if errors.As(err, &sc) {
		switch sc.Code() & 0xff { // the primary result code
		case 5, 6, 10, 13, 14: // SQLITE_BUSY, _LOCKED, _IOERR, _FULL, _CANTOPEN
			return true
		}
	}
	return false
}
