package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStartKillRestart: the cluster starts, serves, dies on Kill (clients
// fail), comes back on Restart with committed data intact.
func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	u := s.NewDatabase()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("fsync %q %v, want on", fsync, err)
	}
	s.Kill()
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("ping after Kill succeeded")
	}
	conn.Close(ctx)
	if _, err := pgx.Connect(ctx, u); err == nil {
		t.Fatal("connect after Kill succeeded")
	}
	s.Restart()
	conn, err = pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after restart: %d %v", v, err)
	}
}
