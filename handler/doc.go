// Package handler owns remediator's HTTP surface: the Alertmanager webhook (its
// authentication, limits, decoding and validation), health and readiness, metrics, and
// the reviewer and admin endpoints. It answers fast and never does remediation work
// itself: accepted alerts go to an Intake, and everything after that belongs to the
// remediate package. It never logs a request body or a credential.
package handler
