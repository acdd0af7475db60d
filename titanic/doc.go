// Package titanic is a Titanic server (9/TSP, the Titanic Service
// Protocol): durable, disconnected request-reply on top of any 7/MDP
// broker. Clients hand a request to titanic.request and get a UUID back;
// Titanic stores the request, sends it to its service whenever the service
// has workers, stores the reply, and hands it out through titanic.reply
// until titanic.close deletes it. Workers need no changes: to them Titanic
// is an ordinary client.
//
//	srv, err := titanic.New(titanic.Config{Broker: "tcp://127.0.0.1:5555", Dir: "/var/lib/titanic"})
//	if err != nil { ... }          // bad setting, or a store that cannot be opened
//	err = srv.Run(ctx)             // until ctx is cancelled; closes the store
//
// # Protocol
//
// Status frames are exactly those of 9/TSP "Status Frames", sent as the
// bare three digits:
//
//   - titanic.request [service, body...]: "200" + UUID (32 lower-case hex
//     digits, a time-ordered UUIDv7) once the request is durably stored;
//     "500" if the store failed (retry later); "400" for a request with no
//     service name.
//   - titanic.reply [UUID]: "200" + the reply frames; "300" while the
//     request waits for its reply; "400" for a UUID that is malformed,
//     unknown, closed or expired. It only reads, so it is idempotent and
//     never deletes the reply.
//   - titanic.close [UUID]: "200", also for an unknown or malformed UUID;
//     "500" if the deletion could not be committed.
//
// # Durability and crash safety
//
// Every state change is a transaction of the Store, committed with
// fdatasync before anyone is told about it: a 200 + UUID means the request
// is on disk, and titanic.reply shows a reply only once it is on disk. The
// default store is a bbolt file (see OpenBolt for why bbolt), whose
// transactions are atomic: after a crash, power loss or kill -9 it opens at
// the last committed transaction. On start Titanic loads every request that
// has no reply and dispatches it.
//
// Group commit: titanic.request handlers (RequestWorkers of them, each a
// worker socket) queue their requests to one committer goroutine, which
// commits everything queued in one transaction and then answers them all.
// At low load a batch is one request; under load it is whatever arrived
// during the previous commit, so the two fdatasyncs of a bbolt commit are
// shared by up to RequestWorkers requests, with no timer and no added
// latency. Replies and closes go through the same committer.
//
// Delivery to workers is at-least-once, and exactly-once from the moment
// the reply is stored:
//
//   - A request is sent again after a failed attempt: no reply within
//     AttemptTimeout (a worker that died, or one slower than the timeout), or
//     a broker that lost it. MDP assumes idempotent workers; so does Titanic.
//   - A request is sent again after a crash if the crash came after it was
//     sent and before its reply's commit returned: the reply was lost with
//     the process, the request is still pending on disk. A graceful stop
//     (Run's context) waits ShutdownGrace for attempts in flight to avoid it.
//   - A request whose reply is stored is never sent again: the reply commit
//     removes it from the pending set in the same transaction, and a stored
//     reply is never replaced (a second reply for it is discarded and
//     counted as Stats.DuplicateReplies).
//
// The crash test in cmd/mdtitanic checks all of this against a real
// process killed with SIGKILL under load.
//
// # Failures
//
// A store that cannot be opened (not a bbolt file, damaged meta pages,
// unknown format, locked by another process, unreadable path) makes New
// fail with an error naming the file. A failed commit (disk full, I/O
// error, the MaxStoreBytes quota) answers 500 to the clients of that batch,
// which SHOULD retry (9/TSP); nothing is half-stored. A failed reply commit
// keeps the reply in memory and retries; the request is not sent again.
// Damage that bbolt finds only while reading (it panics on some damaged
// pages) is turned into ErrCorrupt: that call answers 500 and the store
// refuses all further work until restarted, rather than write into a damaged
// file. VerifyStore checks every page at open.
//
// # Several servers on one PostgreSQL database
//
// With Config.Postgres (see OpenPostgres) the store is a PostgreSQL
// database that several Titanic servers, each on its own broker, share: a
// request accepted by one is answered, fetched and closed through any of
// them. Each pending request is dispatched by one server at a time, the
// holder of its lease (SharedStore): a server leases what it accepts, renews
// its leases while it runs, releases them when it stops, and claims requests
// whose lease ran out, so that a server that died is taken over after
// LeaseTTL. See lease.go for the details and what is guaranteed when a
// server is cut off. When the database is unreachable, the three services
// answer 500 and the server recovers by itself once it is back.
//
// # Dispatch
//
// See dispatcher in dispatch.go: lanes with one request in flight each
// (MDP replies carry no request id), each a client.Client sending with
// Client.Go (lane.go), MaxInFlight of them, round-robin over
// services, at most MaxInFlightPerService per service, 8/MMI mmi.service to
// hold requests in Titanic while their service has no workers, and
// exponential backoff with jitter between attempts.
//
// # Retention
//
// titanic.close deletes at once. A reply nobody closes is deleted
// ReplyTTL after it was stored (Stats.ExpiredReplies); a request that never
// got a reply can be given up after RequestTTL (Stats.ExpiredRequests). A
// deleted UUID answers 400.
package titanic
