// Package state owns what must be remembered across restarts. Store holds what guards
// need: leases, sliding-window counters with reservations, and small records with a
// time to live; statetest is the suite every implementation must pass, and Bolt keeps
// everything in one local file (the default, for one replica). Journal is the durable
// intake's append-only log, with group commit. The package knows nothing of policies
// or alerts: keys and values are the callers'.
package state
