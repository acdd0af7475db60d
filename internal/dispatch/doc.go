// Package dispatch holds the protocol-neutral machinery of a request
// broker: the parts that 7/MDP (package broker) and eMQP/1.0 (package emqp)
// have in common, so that both protocols are clients of one implementation
// of each mechanism instead of keeping copies.
//
//   - Deque: a growable ring buffer, O(1) at both ends, no allocation in
//     steady state.
//   - Fair: a FIFO fair across submitters (one lane per client, served
//     round-robin), with expiry and in-place removal.
//   - Pool, Queue, Worker: named queues with bounded length and bytes
//     (per queue, and a Budget shared by several), workers with slots of
//     credit (a 7/MDP worker has one slot, refilled by its reply; an eMQP
//     job manager gets one per READY), subscriptions with weights, and the
//     two choices a broker makes: which ready worker takes a job arriving
//     in a queue (heaviest weight first, least recently used among equals)
//     and which queue a worker with a free slot serves next (smooth
//     weighted round-robin, or strict priority).
//   - Liveness, Heartbeats, Ticker: heartbeat bookkeeping per peer, the
//     heartbeat and death policy, and the loop's housekeeping timer.
//   - Redelivery: what happens to a job whose worker dies holding it.
//   - Histogram: the latency histograms behind the metrics.
//
// Nothing here does I/O or takes a lock: a Pool belongs to one goroutine,
// the protocol's event loop, which owns its sockets too. The protocol layer
// decodes messages, keeps its peers in its own maps (a Worker carries the
// protocol's record in Peer), sends what the pool decides, and keeps the
// jobs a worker holds, since only the protocol knows what "done" means.
package dispatch
