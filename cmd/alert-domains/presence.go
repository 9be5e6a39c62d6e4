package main

import "github.com/alert-domains/alert-domains/internal/ops"

// servePresence answers the presence questions of status for serve (see
// ops.ServePresence).
var servePresence = ops.ServePresence
