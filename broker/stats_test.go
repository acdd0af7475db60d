package broker

import (
	"testing"

	"github.com/majordomo-go/majordomo/internal/testutil"
)

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
	testutil.PinNames(t, "DropReason", drops, int(numDropReasons))
	removes := map[RemoveReason]string{
		RemovedDisconnect: "disconnect", RemovedExpired: "expired", RemovedProtocol: "protocol",
		RemovedInvalid: "invalid", RemovedMMIService: "mmi_service", RemovedUnreachable: "unreachable",
		RemovedShutdown: "shutdown", RemovedTooManyServices: "too_many_services",
		RemovedUnauthorized: "unauthorized",
	}
	testutil.PinNames(t, "RemoveReason", removes, int(numRemoveReasons))
	if DropReason(200).String() != "drop_reason_200" || RemoveReason(200).String() != "remove_reason_200" {
		t.Error("unknown reasons must still print")
	}
}
