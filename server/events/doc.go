// Package events delivers the server's outbox events to webhook sinks.
//
// Every change the server makes (a finding created, updated or closed, a scan completed, coverage
// changed) is written to a transactional outbox in the same database transaction as the change
// itself (see model.OutboxEvent). A Dispatcher claims those events in batches under a lease, wraps
// each in a CloudEvents 1.0 structured-mode JSON envelope, and POSTs it to every enabled Sink of the
// event's account (or of an account allowed to see it, such as a delegated administrator), signed
// with HMAC-SHA256 over "<timestamp>.<body>".
//
// Delivery is at least once: a crash between a receiver's 2xx and the outbox update resends the
// event, so receivers deduplicate by event id (the Vigil-Event-Id header and the envelope's "id").
// Retries go back through the outbox with exponential backoff and full jitter, so they survive a
// restart and any server process sharing the database may make them. README.md documents the wire
// format and the signature scheme for people writing receivers.
package events
