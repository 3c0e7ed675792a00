// Package mqtt is the agent's MQTT trigger: topic filters and reply
// templates, the link to a broker (paho, MQTT 3.1.1) or a broker embedded in
// the agent (mochi-mqtt), the bindings of functions to filters, and the
// durable inbox and outbox in SQLite through which every message passes.
//
// A QoS 1 message is committed to the inbox (and the WAL fsynced, in a group
// commit shared by the messages that arrive together) before it is
// acknowledged: to the external broker with a PUBACK, or, for the embedded
// broker, before the broker PUBACKs the publisher. The invocation runs from
// the inbox (handed to a worker as soon as it is queued for its commit; it
// waits for the row only to finish); failures are retried with backoff,
// then published as dead letters. A reply is published at once when the
// broker is reachable, else kept in a durable outbox; either way the inbox
// row goes only once the reply is acknowledged or stored. Neither paho's
// nor the broker's own store is ever the record.
//
// It is not an MQTT library: it imports paho and mochi (the only package
// that does) and knows nothing of sandboxes: the agent hands it a function
// that invokes.
package mqtt
