// Package remediate owns what happens to an alert after the webhook accepted it: the
// bounded queue, the workers that drain it, and the engine that matches alerts to
// policies and runs their steps in the configured mode. It never speaks HTTP to
// Alertmanager's webhook and never parses policy files; those belong to handler and
// policies.
package remediate
