package emqp

import (
	"fmt"
	"github.com/majordomo-go/majordomo/auth"
	"time"

	"github.com/majordomo-go/majordomo/emqp/schedule"
	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/dispatch"
)

// DropReason says why the server dropped a message or a request. Every
// drop is counted under exactly one reason; Stats reports the counts.
type DropReason uint8

// Drop reasons. The first seven map one to one onto the wire.ErrXxx
// decoding sentinels.
const (
	DropEmpty             DropReason = iota // No frames after the identity.
	DropDelimiter                           // Frame 0 not empty.
	DropProtocol                            // Not eMQP/1.0.
	DropCommand                             // Unknown command.
	DropMsgID                               // Missing or oversized message id.
	DropShort                               // Too few arguments.
	DropExtraFrames                         // Too many arguments.
	DropTooManyFrames                       // More frames than any eMQP message has.
	DropUnexpected                          // A valid command where it makes no sense.
	DropUnknownPeer                         // A job manager command before INFORM (ignored, as EventMQ does).
	DropBadInform                           // INFORM with an unusable queue list or peer type (not acknowledged).
	DropQueueFull                           // Queue at Config.MaxQueue.
	DropQueueBytes                          // Queued bytes at Config.MaxQueuedBytes.
	DropTooManyQueues                       // Config.MaxQueues reached.
	DropExpired                             // Waited Config.QueueTimeout.
	DropAttemptsExhausted                   // A guaranteed request whose job managers kept dying.
	DropWorkerLost                          // A tracked request without guarantee whose job manager died.
	DropReplyUnroutable                     // The client had gone when its REPLY came.
	DropReplyBlocked                        // The client's send queue was full.
	DropReplyUnknown                        // A job manager REPLY for no request it holds.
	DropNoScheduler                         // SCHEDULE or UNSCHEDULE with no scheduler connected.
	DropBadSchedule                         // SCHEDULE or UNSCHEDULE the built-in scheduler cannot read.
	DropNoPublisher                         // PUBLISH with no PubOut socket.
	DropDuplicateMsgID                      // A request whose msgid is already in flight on that job manager.
	DropShutdown                            // Still queued when the server stopped.
	DropUnauthorized                        // The policy (Config.Authorizer) refused it.
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"empty", "delimiter", "protocol", "command", "msgid", "short", "extra_frames",
	"too_many_frames", "unexpected", "unknown_peer", "bad_inform", "queue_full",
	"queue_bytes", "too_many_queues", "expired", "attempts_exhausted", "worker_lost",
	"reply_unroutable", "reply_blocked", "reply_unknown", "no_scheduler",
	"bad_schedule", "no_publisher", "duplicate_msgid", "shutdown", "unauthorized",
}

// String returns the reason's snake_case name, as logs and metrics use it.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop_reason_%d", uint8(r))
}

// DropReasons lists every DropReason.
func DropReasons() []DropReason {
	r := make([]DropReason, numDropReasons)
	for i := range r {
		r[i] = DropReason(i)
	}
	return r
}

// RemoveReason says why a job manager or scheduler was removed.
type RemoveReason uint8

// Remove reasons.
const (
	RemovedKbye         RemoveReason = iota // It said KBYE (or DISCONNECT).
	RemovedExpired                          // Silent for Config.HeartbeatTimeout.
	RemovedUnreachable                      // A send to it failed.
	RemovedReinform                         // It sent INFORM again: it restarted.
	RemovedLeaveTimeout                     // Said KBYE, then owed replies past Config.LeaveGrace.
	RemovedShutdown                         // The server stopped.
	numRemoveReasons
)

var removeNames = [numRemoveReasons]string{"kbye", "expired", "unreachable", "reinform", "leave_timeout", "shutdown"}

// String returns the reason's snake_case name.
func (r RemoveReason) String() string {
	if r < numRemoveReasons {
		return removeNames[r]
	}
	return fmt.Sprintf("remove_reason_%d", uint8(r))
}

// RemoveReasons lists every RemoveReason.
func RemoveReasons() []RemoveReason {
	r := make([]RemoveReason, numRemoveReasons)
	for i := range r {
		r[i] = RemoveReason(i)
	}
	return r
}

// Stats is a snapshot of the server's state and counters.
type Stats struct {
	Workers        int   // Job managers registered (leaving ones included).
	LeavingWorkers int   // Of which said KBYE and still owe replies.
	Schedulers     int   // Schedulers registered.
	Schedules      int   // Schedules kept by the built-in scheduler.
	FreeSlots      int   // READY credit not yet used, over all job managers.
	InFlight       int   // Tracked requests (reply-requested or guarantee) awaiting their REPLY.
	Queues         int   // Queues known.
	Waiting        int   // Requests waiting for a free slot.
	WaitingBytes   int64 // Their bytes.

	Requests         uint64 // REQUESTs received.
	Dispatched       uint64 // REQUESTs sent to job managers (redeliveries included).
	Redelivered      uint64 // Of which redeliveries of guaranteed requests.
	Acks             uint64 // REPLY acknowledgements sent to clients.
	Replies          uint64 // REPLYs received from job managers for requests they held.
	RepliesForwarded uint64 // Of which forwarded to a reply-requested client.
	Scheduled        uint64 // SCHEDULEs forwarded to a scheduler, or taken by the built-in one.
	ScheduledRuns    uint64 // REQUESTs the built-in scheduler made.
	Unscheduled      uint64 // UNSCHEDULEs forwarded (once per scheduler).
	Published        uint64 // PUBLISHes sent to subscribers.
	Registered       uint64 // Job manager INFORMs accepted.
	SchedulersJoined uint64 // Scheduler INFORMs accepted.
	Heartbeats       uint64 // HEARTBEATs sent.
	AdminCommands    uint64 // Administrative commands answered (HELLO included).

	Dropped [numDropReasons]uint64 // By DropReason.
	// Unauthorized splits DropUnauthorized by the socket the refused
	// message came on; UnauthorizedOn reads it by front name.
	Unauthorized [numSocks]uint64
	Removed      [numRemoveReasons]uint64 // Job managers and schedulers removed, by RemoveReason.
}

// UnauthorizedOn returns the policy refusals on a front (FrontBackend...).
func (s Stats) UnauthorizedOn(front string) uint64 {
	for i, f := range fronts {
		if f == front {
			return s.Unauthorized[i]
		}
	}
	return 0
}

// DroppedBy returns the count for reason r.
func (s *Stats) DroppedBy(r DropReason) uint64 {
	if r < numDropReasons {
		return s.Dropped[r]
	}
	return 0
}

// RemovedBy returns the count for reason r.
func (s *Stats) RemovedBy(r RemoveReason) uint64 {
	if r < numRemoveReasons {
		return s.Removed[r]
	}
	return 0
}

// TotalDropped returns the number of drops for any reason.
func (s *Stats) TotalDropped() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// Histogram is a non-cumulative latency histogram over LatencyBuckets:
// Counts[i] counts the observations in (LatencyBuckets[i-1],
// LatencyBuckets[i]] and the last element those above the largest bound.
// It is the same type as broker.Histogram, so that metrics of both
// protocols line up and one exporter reads both.
type Histogram = dispatch.Histogram

// LatencyBuckets are the upper bounds of the latency histograms kept per
// queue (queue wait and service time), the same as the MDP broker's.
var LatencyBuckets = dispatch.LatencyBuckets

// QueueStatus is one queue in a Status.
type QueueStatus struct {
	Name         string
	Workers      int   // Job managers serving it.
	ReadyWorkers int   // Of which with a free slot.
	Waiting      int   // Requests waiting.
	WaitingBytes int64 // Their bytes.
	InFlight     int   // Tracked requests dispatched from it awaiting their REPLY.
	// OldestInFlight and MeanInFlight are the ages of those requests.
	OldestInFlight, MeanInFlight time.Duration
	// The counters: Submitted counts requests routed here, Rejected those
	// refused by a bound, Requeued redeliveries, Completed REPLYs for
	// tracked requests, Dropped tracked requests lost with their job
	// manager.
	Submitted, Rejected, Expired, Dispatched, Requeued, Completed, Dropped uint64
	QueueWait                                                              Histogram
	ServiceTime                                                            Histogram // Tracked (reply-requested or guaranteed) requests only.
}

// WorkerStatus is one job manager in a Status.
type WorkerStatus struct {
	Identity  string
	Queues    []wire.QueueSpec // As announced, heaviest first.
	FreeSlots int
	InFlight  int    // Tracked requests it holds.
	Processed uint64 // Requests dispatched to it.
	Since     time.Time
	LastSeen  time.Duration // Since anything was heard from it.
	Leaving   bool          // Said KBYE, still owes replies.
}

// SchedulerStatus is one scheduler in a Status.
type SchedulerStatus struct {
	Identity  string
	Since     time.Time
	LastSeen  time.Duration
	Scheduled uint64 // SCHEDULEs forwarded to it.
}

// Endpoints are the bound endpoints, wildcard ports resolved; "" for a
// socket that is off.
type Endpoints struct {
	Frontend, Backend, Admin, PubIn, PubOut string
}

// Status is a detailed snapshot for operators and metrics exporters.
type Status struct {
	Stats
	Started   time.Time
	Now       time.Time
	Endpoints Endpoints
	// Listeners describes every endpoint and the mechanism it speaks.
	Listeners []auth.Listener
	// Auth are the counters of Config.Security's Authenticator (zero
	// without security), by front.
	Auth auth.Stats
	// Conns are the connection counters of every front's socket.
	Conns      []auth.ConnStats
	Queues     []QueueStatus     // Sorted by name.
	Workers    []WorkerStatus    // Sorted by identity.
	Schedulers []SchedulerStatus // Sorted by identity.
	// Schedules are the built-in scheduler's, by next run time.
	Schedules []schedule.Info
}
