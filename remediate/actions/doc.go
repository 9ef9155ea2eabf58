// Package actions holds the actions policy steps run: their interface, their registry,
// and one file per family (tls, escalate, and the AWS services). An action declares
// whether it mutates, the parameters it takes and the facts it returns, so that policies
// are checked at load; it describes the exact request it would send, so that dry-run
// plans show it; and it runs. Actions decide nothing about modes or guards: the engine
// in package remediate never calls Run on a mutating action outside live mode.
package actions
