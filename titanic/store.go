package titanic

import (
	"errors"
	"time"
)

// Errors of the storage layer. Store implementations wrap them so that
// callers can tell them apart with errors.Is.
var (
	// ErrCorrupt: the store holds data that cannot be decoded, or the
	// storage engine found its own structures damaged. A store that hits
	// corruption inside the engine stops accepting writes (every later call
	// fails with ErrCorrupt) rather than risk making it worse.
	ErrCorrupt = errors.New("titanic: store corrupted")
	// ErrStoreClosed: the store was closed.
	ErrStoreClosed = errors.New("titanic: store closed")
	// ErrStoreFull: the store reached its configured size limit.
	ErrStoreFull = errors.New("titanic: store full")
)

// OpKind says what an Op does.
type OpKind uint8

// Kinds of Op.
const (
	// OpSubmit stores a new request: ID, Service, Body and Time (its
	// creation time). The ID must be new.
	OpSubmit OpKind = iota + 1
	// OpReply stores the reply Body for request ID, received at Time. It is
	// applied only if the request is stored and has no reply yet, so that a
	// reply, once stored, is never replaced (Applied reports which).
	OpReply
	// OpClose deletes request ID and its reply, if any (Applied reports
	// whether anything was there).
	OpClose
	// OpExpire deletes, up to Limit of each (0: no limit), replies stored
	// before ReplyBefore (if not zero) together with their requests, and
	// requests still without a reply created before RequestBefore (if not
	// zero). Results go to ExpiredReplies and ExpiredRequests.
	OpExpire
)

// Op is one mutation in a Store.Commit batch. Commit fills in the result
// fields.
type Op struct {
	Kind    OpKind
	ID      ID
	Service string
	Body    [][]byte
	Time    time.Time

	ReplyBefore   time.Time // OpExpire.
	RequestBefore time.Time // OpExpire.
	Limit         int       // OpExpire.

	// Results.
	Applied         bool // OpReply: stored. OpClose: something was deleted.
	ExpiredReplies  int  // OpExpire: replies (and their requests) deleted.
	ExpiredRequests []ID // OpExpire: requests without a reply deleted.
}

// Entry is what a store knows about one ID.
type Entry struct {
	Found     bool     // A request or a reply is stored under the ID.
	Service   string   // The request's target service, if Found.
	Replied   bool     // A reply is stored.
	Reply     [][]byte // The reply's frames, if Replied.
	RepliedAt time.Time
}

// Counts are a store's sizes.
type Counts struct {
	Pending int // Requests without a reply.
	Replies int // Replies stored (not yet closed or expired).
	Bytes   int64
}

// Store is Titanic's durable storage. The default, opened by OpenBolt, is
// an embedded bbolt file; a server-backed store (SQL, a replicated log) can
// replace it by implementing this interface.
//
// Durability contract: when Commit returns nil, every Op of the batch is on
// stable storage and survives a crash of the process or the machine; when it
// returns an error, the batch is rolled back (it may still have reached the
// disk if the failure came after the commit point, e.g. an fsync error on
// the final flush, which is why Titanic answers 500, meaning "retry", rather
// than promising the request was not stored).
//
// Commit is called from one goroutine at a time (Titanic's group committer);
// Get, Request and Pending may be called concurrently with it and with each
// other, and must see every Commit that returned before they were called.
type Store interface {
	// Commit applies ops in one atomic, durable transaction.
	Commit(ops []*Op) error
	// Get returns what is stored under id. An unknown id is not an error.
	Get(id ID) (Entry, error)
	// Request returns the stored request id, if it is stored.
	Request(id ID) (service string, body [][]byte, ok bool, err error)
	// Pending calls fn for every request without a reply, oldest first,
	// until fn returns false.
	Pending(fn func(id ID, service string) bool) error
	// Counts returns the store's sizes.
	Counts() Counts
	// Close releases the store. Calls after Close fail with ErrStoreClosed.
	Close() error
}

// Claimed is a request leased by SharedStore.Claim.
type Claimed struct {
	ID      ID
	Service string
}

// SharedStore is a Store that several Titanic servers use at once, each
// through its own SharedStore value with its own Owner, so that a request
// accepted by one can be answered through another. Each pending request is
// leased to one owner at a time, until a time kept by the shared store's
// clock; only the lease holder dispatches it. A holder renews its leases
// while it runs and releases them when it stops; when it dies, its leases
// run out and other servers Claim the requests.
//
// Commit's OpSubmit leases the new request to Owner, and OpReply applies
// whoever holds the lease (the first reply stored wins, as with every
// store), so a server that lost a lease while an attempt was in flight can
// still store that attempt's reply.
//
// Titanic does not call Pending on a SharedStore: it learns of pending
// requests through Claim.
type SharedStore interface {
	Store
	// Owner is the name this value's leases carry.
	Owner() string
	// LeaseTTL is how long a lease lasts without renewal.
	LeaseTTL() time.Duration
	// Claim leases up to max pending requests whose lease ran out or was
	// released to Owner, oldest first.
	Claim(max int) ([]Claimed, error)
	// Renew extends Owner's leases on ids by LeaseTTL and returns those it
	// still held (the others were taken over, answered, closed or expired).
	Renew(ids []ID) (kept []ID, err error)
	// Release ends every lease Owner holds, so that other servers may claim
	// the requests at once.
	Release() error
}
