// Package client is the Majordomo client library: requests to named
// services through a 7/MDP (MDP/0.1) or 18/MDP (MDP/0.2) broker.
//
//	c, err := client.Connect("tcp://127.0.0.1:5555")
//	...
//	defer c.Close()
//	reply, err := c.Request(ctx, "echo", []byte("hello"))
//
// # Reliability
//
// Request polls instead of blocking, as 7/MDP and 18/MDP recommend in
// "MDP/Client". When no reply comes within the timeout it asks the broker
// (mmi.workers, or mmi.service on other brokers) before doing anything
// else: "404" fails the call at once
// with ErrNoWorkers, "200" keeps it waiting (until its context ends) with
// no second copy queued, and silence means the broker is unreachable, which
// brings the Lazy Pirate resend on a new socket, up to a number of retries,
// then ErrTimeout. Only that last case can make a request reach a worker
// twice; MDP assumes workers are idempotent. See Client.Request for the
// details and their cost.
//
// # Several brokers
//
// WithBrokers gives a Client further brokers beside Connect's. It keeps a
// socket to each and sends each request to the next broker in turn among
// those up and connected. The retry loop above stays the only one, with
// "resend on a new socket" become "move to another broker": a broker whose
// connection is lost, or that leaves the question unanswered, is taken out
// of use and its requests move to another, each move using one retry; a
// broker that says "404" is passed over without using one, and
// ErrNoWorkers comes only when no broker that is up has a worker. mmi.*
// requests are answered by the broker that gets them: ServiceExists says
// whether that broker has a worker; ServiceByBroker asks each, and
// RequestAt sends to one named broker without ever moving. A Pipeline uses
// the first broker only.
//
// # Correlation and ordering
//
// An MDP reply names its service but not its request. A Client therefore
// keeps at most one request per service on each of its sockets. Calls for
// different services share a socket and run in parallel; concurrent calls
// for one service get sockets of their own, opened as needed and kept, up
// to WithSockets per broker (DefaultSockets), and beyond that wait inside
// the client for their turn. Every reply thus reaches the right caller.
// A request abandoned after it was sent (its context
// ended, or it timed out for the last time) may still be answered; such a
// late reply is discarded, and if the next request to that service comes
// before it, the client first replaces its socket so that the late reply
// cannot be mistaken for the new one.
//
// A Pipeline trades that guarantee for throughput: many requests in flight
// on one socket, replies delivered as they arrive, correlated by service
// name only. See Pipeline for what ordering holds.
//
// # Streaming
//
// Under 18/MDP a worker may answer with PARTIAL replies before its FINAL.
// Stream yields them one by one; Request returns only the FINAL.
//
// # Concurrency
//
// A Client and a Pipeline are safe for use by many goroutines. Each of
// their sockets is owned by one internal goroutine (a Client's goroutine
// owns one socket to each broker); callers talk to it over channels, since
// ZeroMQ sockets must not be shared between threads.
package client
