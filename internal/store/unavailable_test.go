package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

type sqlState string

func (s sqlState) Error() string    { return "pg: " + string(s) }
func (s sqlState) SQLState() string { return string(s) }

type sqliteCode int

func (c sqliteCode) Error() string { return fmt.Sprintf("sqlite %d", int(c)) }
func (c sqliteCode) Code() int     { return int(c) }

func TestIsUnavailable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrNotFound, false},
		{fmt.Errorf("create: %w", ErrAlreadyExists), false},
		{fmt.Errorf("get: %w", ErrUnavailable), true},
		{fmt.Errorf("postgres: %w", dial), true},
		{fmt.Errorf("x: %w", driver.ErrBadConn), true},
		{sqlState("08006"), true},  // connection failure
		{sqlState("57P01"), true},  // admin shutdown
		{sqlState("53300"), true},  // too many connections
		{sqlState("23505"), false}, // unique violation
		{sqliteCode(5), true},      // SQLITE_BUSY
		{sqliteCode(5 | 2<<8), true},
		{sqliteCode(19), false}, // SQLITE_CONSTRAINT
		{context.Canceled, false},
		{errors.New("something else"), false},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
