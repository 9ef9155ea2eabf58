package remediate

import (
	"github.com/prometheus/client_golang/prometheus"
)

type engineMetrics struct {
	runs       *prometheus.CounterVec
	steps      *prometheus.CounterVec
	runSeconds *prometheus.HistogramVec
	skips      *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_runs_total",
			Help: "Runs of policies, by policy and outcome.",
		}, []string{"policy", "outcome"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_steps_total",
			Help: "Steps of runs, by action, decision (executed, planned, skipped, failed) and mode.",
		}, []string{"action", "outcome", "mode"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "remediator_run_duration_seconds",
			Help:    "Time runs took, by policy.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"policy"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_skips_total",
			Help: "Runs and steps the guards kept from happening, by policy and reason.",
		}, []string{"policy", "reason"}),
	}
	reg.MustRegister(m.runs, m.steps, m.runSeconds, m.skips)
	return m
}

// init creates every series of the loaded policies and actions at zero, so that rates
// and alerts on them work from the first scrape.
func (m *engineMetrics) init(rules *Rules) {
	for _, name := range rules.Policies.Names() {
		for _, o := range outcomes {
			m.runs.WithLabelValues(name, o)
		}
		m.runSeconds.WithLabelValues(name)
		for _, r := range skipReasons {
			m.skips.WithLabelValues(name, r)
		}
	}
	for _, action := range rules.Actions.Names() {
		for _, d := range decisions {
			for _, mode := range []string{"dry-run", "live"} {
				m.steps.WithLabelValues(action, string(d), mode)
			}
		}
	}
}
