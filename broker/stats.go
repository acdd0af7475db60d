package broker

import "fmt"

// DropReason says why the broker dropped a message. Every dropped message is
// counted under exactly one reason; Stats reports the counts.
type DropReason uint8

// Drop reasons. Decoding failures map one to one onto the mdp.ErrXxx
// sentinels; the others are broker decisions.
const (
	DropEmpty             DropReason = iota // No frames after the identity.
	DropDelimiter                           // 0.1 message without its empty frame 0.
	DropHeader                              // Unknown or missing protocol header.
	DropCommand                             // Unknown command byte, or wrong direction.
	DropShort                               // A required frame is missing.
	DropExtraFrames                         // Fixed-size command with extra frames.
	DropService                             // Empty service name, or longer than Config.MaxServiceName.
	DropEnvelope                            // Bad client address envelope in a worker reply.
	DropTooManyFrames                       // More frames than Config.MaxFrames.
	DropUnexpected                          // Valid command at the wrong time (answered with DISCONNECT).
	DropQueueFull                           // Service queue at Config.MaxQueue.
	DropQueueBytes                          // Queued bytes at Config.MaxQueuedBytes.
	DropTooManyServices                     // Config.MaxServices reached.
	DropExpired                             // Waited Config.RequestTimeout with no worker.
	DropAttemptsExhausted                   // Workers died holding it Config.MaxAttempts times.
	DropWorkerLost                          // Its worker died and redelivery is disabled.
	DropReplyUnroutable                     // The client had gone when its reply came.
	DropReplyBlocked                        // The client's send queue was full (high-water mark).
	DropPartialToV1                         // A 0.2 PARTIAL for a 0.1 client, which gets only the FINAL.
	DropMMIWorker                           // A worker tried to register an mmi.* service.
	DropShutdown                            // Still queued when the broker stopped.
	DropUnauthorizedCall                    // A request for a service the client may not call (Security.Authorizer).
	DropUnauthorizedReady                   // A READY for a service the worker may not serve (answered with DISCONNECT).
	DropClientInFlight                      // The client already had Config.MaxClientInFlight requests outstanding.
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"empty", "delimiter", "header", "command", "short", "extra_frames",
	"service", "envelope", "too_many_frames", "unexpected", "queue_full",
	"queue_bytes", "too_many_services", "expired", "attempts_exhausted",
	"worker_lost", "reply_unroutable", "reply_blocked", "partial_to_v1",
	"mmi_worker", "shutdown", "unauthorized_call", "unauthorized_ready", "client_in_flight",
}

// String returns the reason's snake_case name, as used in logs and metrics.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop_reason_%d", uint8(r))
}

// RemoveReason says why a worker was removed from the broker (compare
// nats-server's ClosedState).
type RemoveReason uint8

// Remove reasons.
const (
	RemovedDisconnect      RemoveReason = iota // The worker sent DISCONNECT.
	RemovedExpired                             // Silent for liveness × heartbeat interval.
	RemovedProtocol                            // Sent a valid but unexpected command.
	RemovedInvalid                             // Sent a malformed message.
	RemovedMMIService                          // Tried to register an mmi.* service.
	RemovedUnreachable                         // A send to it failed.
	RemovedShutdown                            // The broker shut down.
	RemovedTooManyServices                     // Its READY named a new service beyond MaxServices.
	RemovedUnauthorized                        // Its READY named a service it may not serve (Security.Authorizer).
	numRemoveReasons
)

var removeNames = [numRemoveReasons]string{
	"disconnect", "expired", "protocol", "invalid", "mmi_service",
	"unreachable", "shutdown", "too_many_services", "unauthorized",
}

// String returns the reason's snake_case name.
func (r RemoveReason) String() string {
	if r < numRemoveReasons {
		return removeNames[r]
	}
	return fmt.Sprintf("remove_reason_%d", uint8(r))
}

// Stats is a snapshot of the broker's state and counters.
type Stats struct {
	Connections int   // Peer connections to the broker's endpoints (clients and workers).
	Workers     int   // Registered workers.
	IdleWorkers int   // Of which waiting for a request.
	BusyWorkers int   // Of which holding a request.
	Services    int   // Services known (with workers or queued requests).
	Queued      int   // Requests waiting for a worker.
	QueuedBytes int64 // Body bytes of those requests.

	Requests    uint64 // Client requests accepted (MMI included).
	MMIRequests uint64 // Of which answered by the broker itself (mmi.*).
	Dispatched  uint64 // REQUESTs sent to workers (redeliveries included).
	Redelivered uint64 // Requests handed to a second or later worker.
	Replies     uint64 // Final replies delivered to clients (MMI included).
	Partials    uint64 // PARTIALs delivered to 0.2 clients.
	Registered  uint64 // Worker registrations (READY accepted).
	Heartbeats  uint64 // HEARTBEATs sent to workers.

	Dropped [numDropReasons]uint64   // Messages dropped, by DropReason.
	Removed [numRemoveReasons]uint64 // Workers removed, by RemoveReason.
}

// DroppedBy returns the number of messages dropped for reason r.
func (s *Stats) DroppedBy(r DropReason) uint64 {
	if r < numDropReasons {
		return s.Dropped[r]
	}
	return 0
}

// RemovedBy returns the number of workers removed for reason r.
func (s *Stats) RemovedBy(r RemoveReason) uint64 {
	if r < numRemoveReasons {
		return s.Removed[r]
	}
	return 0
}

// TotalDropped returns the number of messages dropped for any reason.
func (s *Stats) TotalDropped() uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// DropReasons lists every DropReason, for iterating in metrics output.
func DropReasons() []DropReason {
	r := make([]DropReason, numDropReasons)
	for i := range r {
		r[i] = DropReason(i)
	}
	return r
}

// RemoveReasons lists every RemoveReason.
func RemoveReasons() []RemoveReason {
	r := make([]RemoveReason, numRemoveReasons)
	for i := range r {
		r[i] = RemoveReason(i)
	}
	return r
}
