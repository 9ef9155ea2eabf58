package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// keyAttempts is the log key of the number of probes made.
const keyAttempts = "attempts"

const (
	defaultRenewWait     = 10 * time.Minute
	defaultRenewInterval = 10 * time.Second
	maxRenewInterval     = time.Minute
)

// NewTLSWaitRenewed returns the tls.wait_renewed action, which probes an endpoint until
// it serves a certificate that expires later than a given time.
func NewTLSWaitRenewed() Action { return tlsWaitRenewed{} }

type tlsWaitRenewed struct{}

// Spec declares tls.wait_renewed.
func (tlsWaitRenewed) Spec() Spec {
	return Spec{
		Name: "tls.wait_renewed",
		Doc: "Probes a TLS endpoint as tls.probe does, again and again with a growing interval, " +
			"until the certificate it serves expires later than after, or until wait_timeout. " +
			"Running out of time is not a failure: renewed says false and not_after is the " +
			"expiry last served. The step fails only when no probe got a certificate at all, " +
			"with the last probe's error. Read-only.",
		Params: append(tlsTargetParams(),
			Param{Name: "after", Type: Time, Required: true,
				Doc: "The expiry to move past, usually the not_after of an earlier probe: the " +
					"endpoint counts as renewed once it serves a certificate expiring later."},
			Param{Name: "wait_timeout", Type: Duration, Default: defaultRenewWait,
				Doc: "How long to keep probing; defaults to 10m."},
			Param{Name: "interval", Type: Duration, Default: defaultRenewInterval,
				Doc: "The wait after the first probe; it doubles after each probe up to 1m. " +
					"Defaults to 10s."},
		),
		Facts: []Fact{
			{Name: "renewed", Type: Bool,
				Doc: "Whether the endpoint served a certificate expiring after after."},
			{Name: "not_after", Type: Time,
				Doc: "The expiry of the certificate last served; the zero time when no probe got one."},
			{Name: "days_left", Type: Int, Doc: "Whole days from now until not_after."},
			{Name: "serial", Type: String, Doc: "The serial of the certificate last served, in lowercase hex."},
			{Name: "sha256", Type: String, Doc: "The SHA-256 fingerprint of the certificate last served."},
			{Name: "verified", Type: Bool,
				Doc: "Whether the chain last served verifies for the server name, as tls.probe checks it."},
			{Name: "verify_error", Type: String, Doc: "Why that chain does not verify; empty when it does."},
			{Name: "attempts", Type: Int, Doc: "How many probes were made."},
			{Name: "last_error", Type: String,
				Doc: "Why the last probe failed; empty when it got a certificate."},
		},
	}
}

// renewWait is what a step asks for.
type renewWait struct {
	target   tlsTarget
	after    time.Time
	timeout  time.Duration
	interval time.Duration
}

func parseRenewWait(p Params) (renewWait, error) {
	target, err := parseTLSTarget(p)
	if err != nil {
		return renewWait{}, err
	}
	w := renewWait{target: target, after: p.Time("after"), timeout: p.Duration("wait_timeout"),
		interval: p.Duration("interval")}
	switch {
	case w.after.IsZero():
		return renewWait{}, Invalid("after: required, the expiry to move past")
	case w.timeout < 0 || w.interval < 0:
		return renewWait{}, Invalid("wait_timeout and interval must not be negative")
	}
	if w.timeout == 0 {
		w.timeout = defaultRenewWait
	}
	if w.interval == 0 {
		w.interval = defaultRenewInterval
	}
	return w, nil
}

// Request describes the probing.
func (tlsWaitRenewed) Request(p Params, _ Env) (Request, error) {
	w, err := parseRenewWait(p)
	if err != nil {
		return Request{}, err
	}
	in := w.target.input()
	in["after"] = w.after.UTC().Format(time.RFC3339)
	in["wait_timeout"] = w.timeout.String()
	return Request{Service: "tls", Operation: "ProbeUntilRenewed", Input: in}, nil
}

// Run probes until the endpoint is renewed or the wait ends.
func (tlsWaitRenewed) Run(ctx context.Context, p Params, env Env) (Facts, error) {
	w, err := parseRenewWait(p)
	if err != nil {
		return nil, err
	}

	seen, err := w.probe(ctx, env)
	if err != nil {
		return nil, err
	}
	return seen.facts(w.after, time.Now()), nil
}

// renewSeen is what the probes saw.
type renewSeen struct {
	last     *tlsProbeResult // the last probe that got a certificate
	attempts int
	lastErr  error // the last probe's error, nil when it got a certificate
}

// probe probes at once and then after each delay until a certificate expiring after
// w.after is served or the wait ends. It fails only when no probe got a certificate, or
// when ctx, the run's, ends.
func (w renewWait) probe(ctx context.Context, env Env) (renewSeen, error) {
	waitCtx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()

	var seen renewSeen
	delay := w.interval
	for {
		res, err := probeTLS(waitCtx, w.target)
		seen.attempts++
		seen.lastErr = err
		if err == nil {
			seen.last = &res
			if res.chain[0].NotAfter.After(w.after) {
				return seen, nil
			}
		}
		envLogger(env).Debug("endpoint not renewed yet", zap.Int(keyAttempts, seen.attempts), zap.Error(err))
		slept := ctx.Err() == nil && sleepCtx(waitCtx, delay)
		if ctx.Err() != nil {
			return renewSeen{}, &StepError{Reason: ReasonFailed,
				Err: fmt.Errorf("waiting for %s to be renewed: %w", w.target.address, ctx.Err())}
		}
		if !slept {
			return seen, seen.failure(w.target.address, w.timeout)
		}
		delay = min(delay*2, maxRenewInterval)
	}
}

// failure is the step's error when the wait ended: none when a probe got a certificate.
func (s renewSeen) failure(address string, timeout time.Duration) error {
	if s.last != nil {
		return nil
	}
	err := s.lastErr
	var se *StepError
	if !errors.As(err, &se) {
		return &StepError{Reason: ReasonTimeout, Err: fmt.Errorf("probing %s: no certificate within %s: %w",
			address, timeout, err)}
	}
	return &StepError{Reason: se.Reason, Err: fmt.Errorf("no probe of %s got a certificate within %s; the last: %w",
		address, timeout, se.Err)}
}

// sleepCtx waits d, and reports false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s renewSeen) facts(after, now time.Time) Facts {
	f := Facts{"renewed": false, "not_after": time.Time{}, "days_left": int64(0), "serial": "", "sha256": "",
		"verified": false, "verify_error": "", "attempts": int64(s.attempts), "last_error": ""}
	if s.lastErr != nil {
		f["last_error"] = s.lastErr.Error()
	}
	if s.last == nil {
		return f
	}
	leaf := s.last.chain[0]
	summary := certificateSummary(leaf, now)
	f["renewed"] = leaf.NotAfter.After(after)
	f["not_after"], f["days_left"] = summary["not_after"], summary["days_left"]
	f["serial"], f["sha256"] = summary["serial"], summary["sha256"]
	f["verified"] = s.last.verifyErr == nil
	if s.last.verifyErr != nil {
		f["verify_error"] = s.last.verifyErr.Error()
	}
	return f
}
