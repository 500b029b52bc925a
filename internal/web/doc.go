// Package web runs the agent's HTTP listeners: it binds first (so a port
// that cannot be bound is a startup error naming the address), then serves
// through exporter-toolkit, which adds TLS and basic auth from a web config
// file, and shuts the server down when the context ends.
//
// Any local process can reach these listeners, so each one bounds what a
// client can hold: read, write and idle timeouts, and a cap on concurrent
// connections at which the oldest idle keep-alive connection is closed to
// let a new one in (see limitListener). A handler that must outlive the
// write timeout is wrapped in LongLived.
package web
