package broker

import "testing"

// TestReasonNames pins every reason's name, which metrics and logs expose:
// the names table must follow the constants' order.
func TestReasonNames(t *testing.T) {
	drops := map[DropReason]string{
		DropEmpty: "empty", DropDelimiter: "delimiter", DropHeader: "header", DropCommand: "command",
		DropShort: "short", DropExtraFrames: "extra_frames", DropService: "service",
		DropEnvelope: "envelope", DropTooManyFrames: "too_many_frames", DropUnexpected: "unexpected",
		DropQueueFull: "queue_full", DropQueueBytes: "queue_bytes", DropTooManyServices: "too_many_services",
		DropExpired: "expired", DropAttemptsExhausted: "attempts_exhausted", DropWorkerLost: "worker_lost",
		DropReplyUnroutable: "reply_unroutable", DropReplyBlocked: "reply_blocked",
		DropPartialToV1: "partial_to_v1", DropMMIWorker: "mmi_worker", DropShutdown: "shutdown",
		DropUnauthorizedCall: "unauthorized_call", DropUnauthorizedReady: "unauthorized_ready",
		DropClientInFlight: "client_in_flight",
	}
	if len(drops) != int(numDropReasons) {
		t.Fatalf("%d drop reasons pinned, %d defined", len(drops), numDropReasons)
	}
	for r, name := range drops {
		if r.String() != name {
			t.Errorf("DropReason %d is %q, want %q", r, r.String(), name)
		}
	}
	removes := map[RemoveReason]string{
		RemovedDisconnect: "disconnect", RemovedExpired: "expired", RemovedProtocol: "protocol",
		RemovedInvalid: "invalid", RemovedMMIService: "mmi_service", RemovedUnreachable: "unreachable",
		RemovedShutdown: "shutdown", RemovedTooManyServices: "too_many_services",
		RemovedUnauthorized: "unauthorized",
	}
	if len(removes) != int(numRemoveReasons) {
		t.Fatalf("%d remove reasons pinned, %d defined", len(removes), numRemoveReasons)
	}
	for r, name := range removes {
		if r.String() != name {
			t.Errorf("RemoveReason %d is %q, want %q", r, r.String(), name)
		}
	}
	if DropReason(200).String() != "drop_reason_200" || RemoveReason(200).String() != "remove_reason_200" {
		t.Error("unknown reasons must still print")
	}
}
