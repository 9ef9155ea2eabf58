// Package state owns what guards and durable intake must remember across restarts:
// leases, sliding-window counters with reservations, and small records with a time to
// live. Store is the interface every implementation satisfies and statetest the suite
// that proves it; Bolt keeps everything in one local file (the default, for one
// replica). The package knows nothing of policies or alerts: keys and values are the
// callers'.
package state
