package titanic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Why pgx (github.com/jackc/pgx/v5) for PostgreSQL: it is the driver most Go
// projects use, maintained for a decade, pure Go (no cgo, no libpq), and
// speaks PostgreSQL's own protocol directly: batches of statements in one
// round trip (the group commit sends a whole batch at once), binary
// encoding of bytea arrays and UUIDs, and a connection pool that replaces
// broken connections, so that Titanic recovers by itself when the server
// comes back.

// Defaults for PGOptions.
const (
	DefaultLeaseTTL  = 15 * time.Second
	DefaultPGTimeout = 10 * time.Second
)

// pgSchemaVersion is the schema version this code writes; migrations bring
// older databases up to it at open.
const pgSchemaVersion = 1

// pgMigrations[i] brings a database from version i to version i+1.
var pgMigrations = []string{
	// 1: one row per request. A request without a reply (replied_at NULL)
	// is pending and leased to one Titanic at a time: lease_owner until
	// lease_until (the database's clock). A released or never-leased
	// request has lease_until -infinity. The service name is bytea: MDP
	// names are bytes, and one that is not valid UTF-8 (or holds a NUL)
	// must not fail the group commit it shares with other requests.
	`CREATE TABLE titanic_request (
		id          uuid PRIMARY KEY,
		service     bytea NOT NULL,
		body        bytea[] NOT NULL,
		created_at  timestamptz NOT NULL,
		reply       bytea[],
		replied_at  timestamptz,
		lease_owner text NOT NULL DEFAULT '',
		lease_until timestamptz NOT NULL DEFAULT '-infinity'
	);
	CREATE INDEX titanic_request_lease ON titanic_request (lease_until) WHERE replied_at IS NULL;
	CREATE INDEX titanic_request_replied ON titanic_request (replied_at) WHERE replied_at IS NOT NULL;`,
}

// PGOptions configure OpenPostgres.
type PGOptions struct {
	// Owner names this Titanic in the leases it takes (default: host name,
	// process id and a random suffix, unique per open store).
	Owner string
	// LeaseTTL is how long a lease lasts without renewal (default
	// DefaultLeaseTTL); the holder renews every LeaseTTL/3. Another Titanic
	// takes a request over at most about LeaseTTL after its holder died.
	LeaseTTL time.Duration
	// Timeout bounds every database call (default DefaultPGTimeout), so
	// that an unreachable server turns into an error (500) in bounded time.
	Timeout time.Duration
	// MaxConns bounds the connection pool (default 8). The URL's
	// pool_max_conns, if given, wins.
	MaxConns int32
}

// PGStore is a Store in PostgreSQL that several Titanic servers can share:
// a request stored through one can be answered through another, and each
// pending request is dispatched by one of them at a time (see
// SharedStore). Open it with OpenPostgres.
type PGStore struct {
	pool    *pgxpool.Pool
	owner   string
	ttl     time.Duration
	timeout time.Duration
	where   string // The URL without its password, for errors.

	mu     sync.Mutex
	closed bool

	cmu      sync.Mutex // Guards the counts cache; held while counting.
	counts   Counts
	countsAt time.Time
	stale    bool
}

var _ SharedStore = (*PGStore)(nil)

// OpenPostgres connects to the PostgreSQL database at url (a postgres://
// URL or key=value string, as libpq takes; search_path may be set in it to
// keep Titanic's tables in a schema of their own) and creates or migrates
// Titanic's tables. Several Titanic servers may open the same database at
// once: migrations are serialised by an advisory lock. A database whose
// schema is newer than this code is refused.
func OpenPostgres(ctx context.Context, connString string, o PGOptions) (*PGStore, error) {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultPGTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 8
	}
	if o.Owner == "" {
		o.Owner = defaultOwner()
	}
	where := RedactURL(connString)
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("titanic: store %s: %w", where, err)
	}
	if !containsParam(connString, "pool_max_conns") {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.Timeout {
		cfg.ConnConfig.ConnectTimeout = o.Timeout
	}
	// Check the health of idle connections often, so that a restarted
	// server's dead connections are replaced before they fail a commit.
	cfg.HealthCheckPeriod = 5 * time.Second
	// A 200 must mean "on stable storage": a session whose default is
	// synchronous_commit=off would acknowledge commits that a crash of the
	// server can lose. Stronger settings (remote_apply, …) are kept.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		var sc string
		if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil {
			return err
		}
		if sc == "off" {
			_, err := c.Exec(ctx, "SET synchronous_commit TO on")
			return err
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("titanic: store %s: %w", where, err)
	}
	s := &PGStore{pool: pool, owner: o.Owner, ttl: o.LeaseTTL, timeout: o.Timeout, where: where, stale: true}
	mctx, cancel := context.WithTimeout(ctx, 4*o.Timeout)
	defer cancel()
	if err := s.migrate(mctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("titanic: store %s: %w", where, err)
	}
	return s, nil
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

func containsParam(connString, name string) bool {
	if u, err := url.Parse(connString); err == nil && u.Scheme != "" {
		return u.Query().Has(name)
	}
	return false
}

// RedactURL returns a PostgreSQL connection URL with its password, if any,
// replaced by "xxxxx", for logs and errors. Strings that are not URLs are
// reduced to their host and database settings.
func RedactURL(connString string) string {
	u, err := url.Parse(connString)
	if err != nil || u.Scheme == "" {
		return "(PostgreSQL connection string)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// migrate creates the version table if needed and applies the migrations
// the database lacks, in one transaction under an advisory lock, so that
// Titanic servers starting together do not race.
func (s *PGStore) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Any constant works as the lock key; this one spells "titanic".
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7469746106)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS titanic_schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM titanic_schema_version").Scan(&v); err != nil {
			return err
		}
		if v > pgSchemaVersion {
			return fmt.Errorf("schema version %d is newer than this Titanic knows (%d): upgrade Titanic", v, pgSchemaVersion)
		}
		for ; v < pgSchemaVersion; v++ {
			if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
				return fmt.Errorf("migrating to schema version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO titanic_schema_version (version) VALUES ($1)", v+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// Owner returns the name this store's leases carry.
func (s *PGStore) Owner() string { return s.owner }

// LeaseTTL returns how long a lease lasts without renewal.
func (s *PGStore) LeaseTTL() time.Duration { return s.ttl }

func (s *PGStore) ctx() (context.Context, context.CancelFunc, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, nil, ErrStoreClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	return ctx, cancel, nil
}

func (s *PGStore) fail(what string, err error) error {
	if errors.Is(err, ErrStoreClosed) || errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("titanic: store %s: %s: %w", s.where, what, err)
}

func uuidArg(id ID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

func uuidArgs(ids []ID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = uuidArg(id)
	}
	return out
}

// frames makes body safe to store as bytea[]: a nil frame would be stored
// as NULL.
func frames(body [][]byte) [][]byte {
	for i, f := range body {
		if f == nil {
			body = slices.Clone(body)
			for j := i; j < len(body); j++ {
				if body[j] == nil {
					body[j] = []byte{}
				}
			}
			break
		}
	}
	return body
}

// idFloor is the smallest ID created at or after t (IDs start with their
// creation time in milliseconds).
func idFloor(t time.Time) ID {
	var id ID
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		id[i] = byte(ms)
		ms >>= 8
	}
	return id
}

func micros(d time.Duration) int64 { return d.Microseconds() }

// Commit implements Store: one transaction, its statements sent as one
// batch (one round trip), committed with the server's WAL flush.
func (s *PGStore) Commit(ops []*Op) error {
	for _, op := range ops {
		op.Applied, op.ExpiredReplies, op.ExpiredRequests = false, 0, nil
	}
	ctx, cancel, err := s.ctx()
	if err != nil {
		return err
	}
	defer cancel()
	b := &pgx.Batch{}
	for i := 0; i < len(ops); {
		if ops[i].Kind == OpSubmit {
			// Consecutive submissions (what a group commit mostly holds)
			// go in one statement: a statement per row costs the server
			// several times more.
			j := i + 1
			for j < len(ops) && ops[j].Kind == OpSubmit {
				j++
			}
			s.queueSubmits(b, ops[i:j])
			i = j
			continue
		}
		if err := s.queue(b, ops[i]); err != nil {
			return err
		}
		i++
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		for _, op := range ops {
			op.Applied, op.ExpiredReplies, op.ExpiredRequests = false, 0, nil
		}
		return s.fail("commit", err)
	}
	s.cmu.Lock()
	s.stale = true
	s.cmu.Unlock()
	return nil
}

func (s *PGStore) queue(b *pgx.Batch, op *Op) error {
	applied := func(ct pgconn.CommandTag) error {
		op.Applied = ct.RowsAffected() > 0
		return nil
	}
	switch op.Kind {
	case OpReply:
		// Only a stored request without a reply takes it: a reply, once
		// stored, is never replaced, whoever holds the lease.
		b.Queue(`UPDATE titanic_request SET reply = $2, replied_at = $3, lease_owner = '', lease_until = '-infinity'
			WHERE id = $1 AND replied_at IS NULL`, uuidArg(op.ID), frames(op.Body), op.Time).Exec(applied)
	case OpClose:
		b.Queue(`DELETE FROM titanic_request WHERE id = $1`, uuidArg(op.ID)).Exec(applied)
	case OpExpire:
		var limit *int
		if op.Limit > 0 {
			limit = &op.Limit
		}
		if !op.ReplyBefore.IsZero() {
			b.Queue(`DELETE FROM titanic_request WHERE id IN (SELECT id FROM titanic_request
				WHERE replied_at < $1 ORDER BY replied_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
				op.ReplyBefore, limit).Exec(func(ct pgconn.CommandTag) error {
				op.ExpiredReplies = int(ct.RowsAffected())
				return nil
			})
		}
		if !op.RequestBefore.IsZero() {
			b.Queue(`DELETE FROM titanic_request WHERE id IN (SELECT id FROM titanic_request
				WHERE replied_at IS NULL AND id < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id`,
				uuidArg(idFloor(op.RequestBefore)), limit).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var id ID
					if err := rows.Scan(&id); err != nil {
						return err
					}
					op.ExpiredRequests = append(op.ExpiredRequests, id)
				}
				if err := rows.Err(); err != nil {
					return err
				}
				slices.SortFunc(op.ExpiredRequests, func(a, b ID) int { return compareID(a, b) })
				return nil
			})
		}
	default:
		return fmt.Errorf("titanic: unknown op kind %d", op.Kind)
	}
	return nil
}

// queueSubmits queues one INSERT for ops, all OpSubmit: the rows come from
// arrays, every frame of every body in one flat bytea[] that each row
// slices (bytea[] cannot be nested in an array). ON CONFLICT: an ID
// collision is not applied (the caller answers 500) and does not abort the
// batch. The new requests are leased to this store's owner, whose
// dispatcher has them already.
func (s *PGStore) queueSubmits(b *pgx.Batch, ops []*Op) {
	ids := make([]pgtype.UUID, len(ops))
	services := make([][]byte, len(ops))
	times := make([]time.Time, len(ops))
	lo, hi := make([]int32, len(ops)), make([]int32, len(ops))
	var flat [][]byte
	for i, op := range ops {
		ids[i], services[i], times[i] = uuidArg(op.ID), []byte(op.Service), op.Time
		lo[i] = int32(len(flat)) + 1 // SQL arrays count from 1.
		flat = append(flat, frames(op.Body)...)
		hi[i] = int32(len(flat))
	}
	b.Queue(`INSERT INTO titanic_request (id, service, body, created_at, lease_owner, lease_until)
		SELECT r.id, r.service, coalesce(($3::bytea[])[r.lo:r.hi], '{}'), r.created_at, $6, now() + $7 * interval '1 microsecond'
		FROM unnest($1::uuid[], $2::bytea[], $4::int[], $5::int[], $8::timestamptz[]) AS r(id, service, lo, hi, created_at)
		ON CONFLICT (id) DO NOTHING RETURNING id`,
		ids, services, flat, lo, hi, s.owner, micros(s.ttl), times).Query(func(rows pgx.Rows) error {
		stored := make(map[ID]bool, len(ops))
		for rows.Next() {
			var id ID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			stored[id] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, op := range ops {
			// The same ID twice in one batch is stored once: the first op
			// gets it.
			if stored[op.ID] {
				op.Applied = true
				delete(stored, op.ID)
			}
		}
		return nil
	})
}

func compareID(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// Get implements Store.
func (s *PGStore) Get(id ID) (Entry, error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return Entry{}, err
	}
	defer cancel()
	var e Entry
	var at pgtype.Timestamptz
	var svc []byte
	err = s.pool.QueryRow(ctx, `SELECT service, reply, replied_at FROM titanic_request WHERE id = $1`,
		uuidArg(id)).Scan(&svc, &e.Reply, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Entry{}, nil
	case err != nil:
		return Entry{}, s.fail("get", err)
	}
	e.Found, e.Service = true, string(svc)
	if at.Valid {
		e.Replied, e.RepliedAt = true, at.Time
		if e.Reply == nil {
			e.Reply = [][]byte{}
		}
	} else {
		e.Reply = nil
	}
	return e, nil
}

// Request implements Store.
func (s *PGStore) Request(id ID) (service string, body [][]byte, ok bool, err error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return "", nil, false, err
	}
	defer cancel()
	var svc []byte
	err = s.pool.QueryRow(ctx, `SELECT service, body FROM titanic_request WHERE id = $1`, uuidArg(id)).Scan(&svc, &body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil, false, nil
	case err != nil:
		return "", nil, false, s.fail("request", err)
	}
	return string(svc), body, true, nil
}

// Pending implements Store: every request without a reply, whoever leases
// it. Titanic itself uses Claim with a shared store.
func (s *PGStore) Pending(fn func(id ID, service string) bool) error {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, service FROM titanic_request WHERE replied_at IS NULL ORDER BY id`)
	if err != nil {
		return s.fail("pending", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id ID
		var svc []byte
		if err := rows.Scan(&id, &svc); err != nil {
			return s.fail("pending", err)
		}
		if !fn(id, string(svc)) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail("pending", err)
	}
	return nil
}

// Claim implements SharedStore: it leases to this store's owner up to max
// pending requests whose lease has run out (or was released), oldest first.
// SKIP LOCKED lets Titanic servers claim at once without waiting for each
// other or taking the same request.
func (s *PGStore) Claim(max int) ([]Claimed, error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, `UPDATE titanic_request r
		SET lease_owner = $1, lease_until = now() + $2 * interval '1 microsecond'
		FROM (SELECT id FROM titanic_request WHERE replied_at IS NULL AND lease_until < now()
			ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) c
		WHERE r.id = c.id RETURNING r.id, r.service`, s.owner, micros(s.ttl), max)
	if err != nil {
		return nil, s.fail("claim", err)
	}
	defer rows.Close()
	var out []Claimed
	for rows.Next() {
		var id ID
		var svc []byte
		if err := rows.Scan(&id, &svc); err != nil {
			return nil, s.fail("claim", err)
		}
		out = append(out, Claimed{ID: id, Service: string(svc)})
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("claim", err)
	}
	slices.SortFunc(out, func(a, b Claimed) int { return compareID(a.ID, b.ID) })
	return out, nil
}

// Renew implements SharedStore.
func (s *PGStore) Renew(ids []ID) ([]ID, error) {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := s.pool.Query(ctx, `UPDATE titanic_request SET lease_until = now() + $3 * interval '1 microsecond'
		WHERE id = ANY($1) AND lease_owner = $2 AND replied_at IS NULL RETURNING id`,
		uuidArgs(ids), s.owner, micros(s.ttl))
	if err != nil {
		return nil, s.fail("renew leases", err)
	}
	defer rows.Close()
	kept := make([]ID, 0, len(ids))
	for rows.Next() {
		var id ID
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail("renew leases", err)
		}
		kept = append(kept, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("renew leases", err)
	}
	return kept, nil
}

// Release implements SharedStore.
func (s *PGStore) Release() error {
	ctx, cancel, err := s.ctx()
	if err != nil {
		return err
	}
	defer cancel()
	_, err = s.pool.Exec(ctx, `UPDATE titanic_request SET lease_owner = '', lease_until = '-infinity'
		WHERE lease_owner = $1 AND replied_at IS NULL`, s.owner)
	if err != nil {
		return s.fail("release leases", err)
	}
	return nil
}

// Counts implements Store. Counting needs a scan of the table, so the
// result is cached for a second (and refreshed after this store's
// commits); when the server cannot be reached, the last counts are
// returned.
func (s *PGStore) Counts() Counts {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || !s.stale && time.Since(s.countsAt) < time.Second {
		return s.counts
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, time.Second))
	defer cancel()
	var c Counts
	var pending, replies int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE replied_at IS NULL), count(*) FILTER (WHERE replied_at IS NOT NULL),
		pg_total_relation_size('titanic_request'::regclass) FROM titanic_request`).Scan(&pending, &replies, &c.Bytes)
	if err != nil {
		return s.counts
	}
	c.Pending, c.Replies = int(pending), int(replies)
	s.counts, s.countsAt, s.stale = c, time.Now(), false
	return c
}

// Close implements Store. It keeps the leases: Titanic releases them
// (Release) at a clean stop, once its attempts in flight are over.
func (s *PGStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.pool.Close()
	return nil
}
