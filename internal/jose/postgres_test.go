package jose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wif-project/wif/internal/store/postgres"
)

// postgresURL is the test server (WIF_TEST_POSTGRES_URL overrides it).
func postgresURL() string {
	if u := os.Getenv("WIF_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// postgresSchema creates a schema of its own for the test and drops it at
// the end; it skips the test when no server answers.
func postgresSchema(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		t.Skipf("no PostgreSQL at %s (set WIF_TEST_POSTGRES_URL): %v", postgresURL(), err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "jose_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, postgresURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func openPostgres(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(t.Context(), postgresURL(), postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestPostgresReplicas(t *testing.T) {
	schema := postgresSchema(t)
	// Two pools on one database, as two replicas have.
	testReplicas(t, openPostgres(t, schema), openPostgres(t, schema))
}
