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
// Request follows the Lazy Pirate strategy that 7/MDP and 18/MDP recommend
// in "MDP/Client": poll instead of blocking, and when no reply comes within
// the timeout, close the socket, open a new one and resend, up to a number
// of retries, then fail with ErrTimeout. A request may therefore reach a
// worker more than once; MDP assumes workers are idempotent.
//
// # Correlation and ordering
//
// An MDP reply names its service but not its request. A Client therefore
// keeps at most one request per service on the wire: concurrent Request
// calls for one service are sent one after the other (in call order), and
// calls for different services run in parallel. Every reply thus reaches
// the right caller. A request abandoned after it was sent (its context
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
// A Client and a Pipeline are safe for use by many goroutines. Each owns
// one ZeroMQ socket through one internal goroutine; callers talk to it over
// channels, since ZeroMQ sockets must not be shared between threads.
package client
