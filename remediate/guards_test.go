package remediate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate/actions"
	"github.com/remediator/remediator/state"
	"github.com/remediator/remediator/state/statetest"
)

// guardAction is a fake action for guard tests: it counts its calls, can fail, and can
// hold its caller until released.
type guardAction struct {
	name    string
	mutates bool
	calls   atomic.Int32
	fail    atomic.Bool
	hold    chan struct{} // when set, Run waits for it
	entered chan struct{}
}

func (g *guardAction) Spec() actions.Spec {
	return actions.Spec{Name: g.name, Mutates: g.mutates,
		Params: []actions.Param{{Name: "reason", Type: actions.String}},
		Facts:  []actions.Fact{{Name: "value", Type: actions.String}}}
}

func (g *guardAction) Request(p actions.Params, _ actions.Env) (actions.Request, error) {
	return actions.Request{Service: "fake", Operation: g.name, Input: map[string]any(p)}, nil
}

func (g *guardAction) Run(ctx context.Context, _ actions.Params, _ actions.Env) (actions.Facts, error) {
	g.calls.Add(1)
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	if g.hold != nil {
		select {
		case <-g.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if g.fail.Load() {
		return nil, fmt.Errorf("fake failure")
	}
	return actions.Facts{"value": "v"}, nil
}

// guardWorld is a store, a clock, actions and the policies under test; engines made
// from it share the store, as a restarted process does.
type guardWorld struct {
	t        *testing.T
	clock    *statetest.Clock
	store    state.Store
	probe    *guardAction
	fix      *guardAction
	escalate *guardAction
	reg      actions.Registry
	set      *policies.Set
	intake   *Intake
}

func newGuardWorld(t *testing.T, policyYAML string) *guardWorld {
	t.Helper()
	w := &guardWorld{t: t, clock: statetest.NewClock(),
		probe:    &guardAction{name: "fake.probe"},
		fix:      &guardAction{name: "fake.fix", mutates: true},
		escalate: &guardAction{name: "escalate", mutates: true},
	}
	w.store = state.NewMemory(w.clock.Now)
	w.reg = actions.NewRegistry(w.probe, w.fix, w.escalate)
	ps, err := policies.Parse("guards.yaml", []byte(policyYAML), w.reg)
	if err != nil {
		t.Fatal(err)
	}
	w.set = &policies.Set{Policies: ps}
	journal, _, err := state.OpenJournal(t.TempDir(), state.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = journal.Close() })
	w.intake = NewIntake(journal, NewQueue(100), zap.NewNop())
	return w
}

// engine starts a new engine on the world's store: a fresh process.
func (w *guardWorld) engine(mode config.Mode) (*Engine, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	e := NewEngine(&Rules{Policies: w.set, Mode: mode, Actions: w.reg}, reg, zap.NewNop(),
		WithStore(w.store), WithClock(w.clock.Now), WithIntake(w.intake))
	return e, reg
}

func occurrenceAt(instance string, startsAt time.Time) Alert {
	return Alert{Alert: template.Alert{
		Status:      StatusFiring,
		Labels:      template.KV{"alertname": "CertExpiring", "instance": instance},
		StartsAt:    startsAt,
		Fingerprint: "fp-" + instance,
	}}
}

func skips(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "remediator_skips_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

const fixPolicy = `
policies:
  - name: fix
    match: ['alertname="CertExpiring"']
    guards:
      cooldown: 6h
%s
    steps:
      - id: probe
        action: fake.probe
      - id: fix
        action: fake.fix
%s
`

func policyWith(guards, step string) string { return fmt.Sprintf(fixPolicy, guards, step) }

func TestDedupStartsOneRunPerOccurrenceAcrossRestarts(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	a := occurrenceAt("imap.example.test:993", w.clock.Now())
	e, reg := w.engine(config.ModeLive)
	for range 20 {
		e.Process(context.Background(), a)
	}
	restarted, reg2 := w.engine(config.ModeLive)
	restarted.Process(context.Background(), a)

	if got := w.fix.calls.Load(); got != 1 {
		t.Errorf("fix called %d times for one occurrence, want 1", got)
	}
	if got := skips(t, reg, SkipDuplicate) + skips(t, reg2, SkipDuplicate); got != 20 {
		t.Errorf("%v duplicates counted, want 20", got)
	}
}

func TestCooldownHoldsANewOccurrenceUntilItEnds(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	e, reg := w.engine(config.ModeLive)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	w.clock.Advance(time.Hour)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if w.fix.calls.Load() != 1 || skips(t, reg, SkipCooldown) != 1 {
		t.Fatalf("calls %d, cooldown skips %v; want 1 and 1", w.fix.calls.Load(), skips(t, reg, SkipCooldown))
	}
	w.clock.Advance(6 * time.Hour)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if w.fix.calls.Load() != 2 {
		t.Errorf("no run after the cooldown ended: %d calls", w.fix.calls.Load())
	}
}

func TestOneRunPerTargetAtATime(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	w.probe.hold, w.probe.entered = make(chan struct{}), make(chan struct{}, 1)
	e, reg := w.engine(config.ModeLive)
	first := occurrenceAt("imap.example.test:993", w.clock.Now())
	second := first
	second.Fingerprint = "another-alert-same-target"

	hold := w.probe.hold
	var wg sync.WaitGroup
	wg.Go(func() { e.Process(context.Background(), first) })
	<-w.probe.entered
	e.Process(context.Background(), second)
	if got := skips(t, reg, SkipTargetBusy); got != 1 {
		t.Errorf("target_busy skips %v, want 1", got)
	}
	close(hold)
	wg.Wait()
}

func TestACrashedHoldersLeaseExpires(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	ok, _, err := w.store.AcquireLease(context.Background(), "target:imap.example.test:993", "dead/run", 15*time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	e, reg := w.engine(config.ModeLive)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if skips(t, reg, SkipTargetBusy) != 1 {
		t.Fatal("a held lease did not keep the run out")
	}
	w.clock.Advance(16 * time.Minute)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if w.fix.calls.Load() != 1 {
		t.Errorf("no run once the lease expired: %d calls", w.fix.calls.Load())
	}
}

func TestRunBudgetCapsRunsPerWindow(t *testing.T) {
	w := newGuardWorld(t, strings.Replace(policyWith("      max_runs: {count: 2, per: 24h}", ""),
		"cooldown: 6h", "cooldown: 0s", 1))
	e, reg := w.engine(config.ModeLive)
	for range 3 {
		e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
		w.clock.Advance(time.Minute)
	}
	if w.fix.calls.Load() != 2 || skips(t, reg, SkipRunBudget) != 1 {
		t.Errorf("calls %d, run_budget skips %v; want 2 and 1", w.fix.calls.Load(), skips(t, reg, SkipRunBudget))
	}
}

func TestActionBudgetIsReservedAndKeptAcrossRestarts(t *testing.T) {
	w := newGuardWorld(t, strings.Replace(policyWith("",
		`        budget: {key: "letsencrypt:{{ .Instance.Domain }}", max: 2, per: 168h}`),
		"cooldown: 6h", "cooldown: 0s", 1))
	e, _ := w.engine(config.ModeLive)
	e.Process(context.Background(), occurrenceAt("smtp-out.example.test:465", w.clock.Now()))
	w.clock.Advance(time.Hour)
	e.Process(context.Background(), occurrenceAt("smtp-out.example.test:465", w.clock.Now()))
	w.clock.Advance(time.Hour)

	restarted, reg := w.engine(config.ModeLive)
	plan := restarted.Plan(context.Background(), []Alert{occurrenceAt("smtp-out.example.test:465", w.clock.Now())})
	fix := plan[0].Runs[0].Steps[1]
	if fix.Decision != DecisionSkipped || fix.Reason != "would be skipped: budget letsencrypt:example.test 2/2 in 168h" {
		t.Errorf("plan shows %s %q", fix.Decision, fix.Reason)
	}
	restarted.Process(context.Background(), occurrenceAt("smtp-out.example.test:465", w.clock.Now()))
	if w.fix.calls.Load() != 2 || skips(t, reg, SkipBudget) != 1 {
		t.Errorf("calls %d, budget skips %v; want 2 and 1", w.fix.calls.Load(), skips(t, reg, SkipBudget))
	}
}

func TestCircuitBreakerOpensAfterFailuresThenLetsOneRunThrough(t *testing.T) {
	w := newGuardWorld(t, strings.Replace(policyWith("      breaker: {failures: 2, open_for: 1h}", ""),
		"cooldown: 6h", "cooldown: 0s", 1))
	w.fix.fail.Store(true)
	e, reg := w.engine(config.ModeLive)
	for range 3 {
		e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
		w.clock.Advance(time.Minute)
	}
	if w.fix.calls.Load() != 2 || skips(t, reg, SkipBreaker) != 1 {
		t.Fatalf("calls %d, breaker skips %v; want 2 and 1", w.fix.calls.Load(), skips(t, reg, SkipBreaker))
	}
	w.clock.Advance(time.Hour)
	w.fix.fail.Store(false)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	w.clock.Advance(time.Minute)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if w.fix.calls.Load() != 4 {
		t.Errorf("the breaker did not close after a successful trial: %d calls", w.fix.calls.Load())
	}
}

func TestAntiFlapEscalatesInsteadOfRepeatingTheFix(t *testing.T) {
	w := newGuardWorld(t, strings.Replace(policyWith("      anti_flap: 24h", ""), "cooldown: 6h", "cooldown: 1m", 1))
	e, reg := w.engine(config.ModeLive)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	w.clock.Advance(2 * time.Hour)
	e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
	if w.fix.calls.Load() != 1 || w.escalate.calls.Load() != 1 || skips(t, reg, SkipFlapping) != 1 {
		t.Errorf("fix %d, escalate %d, flapping skips %v; want 1, 1 and 1",
			w.fix.calls.Load(), w.escalate.calls.Load(), skips(t, reg, SkipFlapping))
	}
}

func TestPauseStopsNewRunsUntilResumed(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	e, reg := w.engine(config.ModeLive)
	ctx := context.Background()
	if err := e.Pause(ctx, "", "test"); err != nil {
		t.Fatal(err)
	}
	restarted, reg2 := w.engine(config.ModeLive)
	restarted.Process(ctx, occurrenceAt("imap.example.test:993", w.clock.Now()))
	if err := restarted.Resume(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Pause(ctx, "fix", "test"); err != nil {
		t.Fatal(err)
	}
	restarted.Process(ctx, occurrenceAt("smtp.example.test:465", w.clock.Now()))
	if err := restarted.Resume(ctx, "fix"); err != nil {
		t.Fatal(err)
	}
	restarted.Process(ctx, occurrenceAt("pop.example.test:995", w.clock.Now()))
	if got := skips(t, reg, SkipPaused) + skips(t, reg2, SkipPaused); got != 2 || w.fix.calls.Load() != 1 {
		t.Errorf("paused skips %v, calls %d; want 2 and 1", got, w.fix.calls.Load())
	}
}

func TestAResolvedAlertCancelsItsQueuedRun(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	e, reg := w.engine(config.ModeLive)
	firing := occurrenceAt("imap.example.test:993", w.clock.Now())
	resolved := firing
	resolved.Status = StatusResolved
	if err := w.intake.Accept([]byte("{}"), []Alert{firing, resolved}); err != nil {
		t.Fatal(err)
	}
	e.Process(context.Background(), firing)
	if w.fix.calls.Load() != 0 || skips(t, reg, SkipResolved) != 1 {
		t.Errorf("calls %d, resolved skips %v; want 0 and 1", w.fix.calls.Load(), skips(t, reg, SkipResolved))
	}
}

func TestAResolvedAlertStopsARunBeforeItsNextMutatingStep(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	hold := make(chan struct{})
	w.probe.hold, w.probe.entered = hold, make(chan struct{}, 1)
	e, reg := w.engine(config.ModeLive)
	firing := occurrenceAt("imap.example.test:993", w.clock.Now())

	done := make(chan struct{})
	go func() { e.Process(context.Background(), firing); close(done) }()
	<-w.probe.entered
	resolved := firing
	resolved.Status = StatusResolved
	if err := w.intake.Accept([]byte("{}"), []Alert{resolved}); err != nil {
		t.Fatal(err)
	}
	close(hold)
	<-done
	if w.fix.calls.Load() != 0 {
		t.Errorf("the fix ran after the alert resolved")
	}
	if got := testutil.ToFloat64(e.metrics.runs.WithLabelValues("fix", OutcomeCancelled)); got != 1 {
		t.Errorf("cancelled runs %v, want 1", got)
	}
	_ = reg
}

func TestVerifyRunsThePolicyForTheResolvedAlert(t *testing.T) {
	w := newGuardWorld(t, policyWith("      on_resolved: verify", ""))
	e, _ := w.engine(config.ModeLive)
	a := occurrenceAt("imap.example.test:993", w.clock.Now())
	a.Status = StatusResolved
	e.Process(context.Background(), a)
	if w.probe.calls.Load() != 1 {
		t.Errorf("probe calls %d for a resolved alert under verify, want 1", w.probe.calls.Load())
	}
}

func TestAfterACrashAnInFlightMutationIsEscalatedNotRepeated(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	a := occurrenceAt("imap.example.test:993", w.clock.Now())
	crashed := &runRecord{ID: "01CRASHEDRUN", Policy: "fix", Target: "imap.example.test:993",
		Attempt: 1, Started: w.clock.Now(), InFlight: []string{"fix"}}
	seed(t, w, a, crashed)

	e, _ := w.engine(config.ModeLive)
	e.Process(context.Background(), a)
	if w.fix.calls.Load() != 0 {
		t.Errorf("the in-flight fix was repeated blindly")
	}
	if w.probe.calls.Load() != 1 {
		t.Errorf("the resumed run did not re-read its facts first")
	}
	if w.escalate.calls.Load() != 1 {
		t.Errorf("outcome unknown was escalated %d times, want 1", w.escalate.calls.Load())
	}
}

func TestAfterACrashAMutationDoneBeforeIsNotRepeated(t *testing.T) {
	w := newGuardWorld(t, policyWith("", ""))
	a := occurrenceAt("imap.example.test:993", w.clock.Now())
	crashed := &runRecord{ID: "01CRASHEDRUN", Policy: "fix", Target: "imap.example.test:993", Attempt: 1,
		Started: w.clock.Now(), Done: map[string]doneStep{"fix": {Decision: DecisionExecuted}}}
	seed(t, w, a, crashed)

	e, _ := w.engine(config.ModeLive)
	e.Process(context.Background(), a)
	if w.fix.calls.Load() != 0 || w.escalate.calls.Load() != 0 {
		t.Errorf("fix %d, escalate %d; want neither", w.fix.calls.Load(), w.escalate.calls.Load())
	}
	rec, _, err := e.loadRun(context.Background(), "01CRASHEDRUN")
	if err != nil || !rec.Finished || rec.Outcome != OutcomeSucceeded || rec.Attempt != 2 {
		t.Errorf("resumed run %+v, %v", rec, err)
	}
}

// seed stores what a process that died during a run leaves behind.
func seed(t *testing.T, w *guardWorld, a Alert, rec *runRecord) {
	t.Helper()
	ctx := context.Background()
	e, _ := w.engine(config.ModeLive)
	if err := e.saveRun(ctx, rec); err != nil {
		t.Fatal(err)
	}
	key := "fix|" + occurrence(&a) + "|" + a.Status
	if err := w.store.Put(ctx, dedupBucket, state.Record{Key: key, Value: []byte(rec.ID)}); err != nil {
		t.Fatal(err)
	}
}

func TestALongRunKeepsItsLease(t *testing.T) {
	w := newGuardWorld(t, policyWith("      lease_ttl: 90ms", ""))
	hold := make(chan struct{})
	w.probe.hold, w.probe.entered = hold, make(chan struct{}, 1)
	e, _ := w.engine(config.ModeLive)
	done := make(chan struct{})
	go func() {
		e.Process(context.Background(), occurrenceAt("imap.example.test:993", w.clock.Now()))
		close(done)
	}()
	<-w.probe.entered

	// the lease's TTL passes twice on the store's clock while the run goes on
	for range 3 {
		time.Sleep(100 * time.Millisecond) // renewals happen every 30ms of real time
		w.clock.Advance(60 * time.Millisecond)
	}
	ok, _, err := w.store.AcquireLease(context.Background(), "target:imap.example.test:993", "intruder", time.Minute)
	if err != nil || ok {
		t.Errorf("another owner took the lease of a run under way: %v %v", ok, err)
	}
	close(hold)
	<-done
}
