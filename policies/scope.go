package policies

import (
	"maps"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/remediator/remediator/remediate/actions"
)

// Scope is what a run's conditions and templates can read: the alert, its parsed
// instance, and the facts of the steps that ran before.
type Scope struct {
	Alert    template.Alert
	Instance Instance
	RunID    string
	Policy   string
	Now      time.Time

	facts map[string]actions.Facts
}

// NewScope returns the scope of a run of policy for a.
func NewScope(a template.Alert, runID, policy string, now time.Time) *Scope {
	return &Scope{
		Alert:    a,
		Instance: ParseInstance(a.Labels["instance"]),
		RunID:    runID,
		Policy:   policy,
		Now:      now,
		facts:    map[string]actions.Facts{},
	}
}

// SetFacts records the facts of step id.
func (s *Scope) SetFacts(id string, f actions.Facts) { s.facts[id] = f }

// Facts returns the facts of step id and whether it has any.
func (s *Scope) Facts(id string) (actions.Facts, bool) {
	f, ok := s.facts[id]
	return f, ok
}

// celVars are the scope as CEL variables.
func (s *Scope) celVars() map[string]any {
	vars := map[string]any{
		"labels":      map[string]string(s.Alert.Labels),
		"annotations": map[string]string(s.Alert.Annotations),
		"alert":       s.alertValue(),
		"instance":    s.Instance.celValue(),
		"now":         s.Now,
	}
	for id, f := range s.facts {
		vars[id] = map[string]any(f)
	}
	return vars
}

func (s *Scope) alertValue() map[string]any {
	return map[string]any{
		"status":        s.Alert.Status,
		"fingerprint":   s.Alert.Fingerprint,
		"starts_at":     s.Alert.StartsAt,
		"ends_at":       s.Alert.EndsAt,
		"generator_url": s.Alert.GeneratorURL,
		"name":          s.Alert.Labels["alertname"],
	}
}

// templateData is the scope as templates see it.
type templateData struct {
	Labels      map[string]string
	Annotations map[string]string
	Alert       template.Alert
	Instance    Instance
	Facts       map[string]map[string]any
	RunID       string
	Policy      string
}

func (s *Scope) templateData() templateData {
	facts := make(map[string]map[string]any, len(s.facts))
	for id, f := range s.facts {
		facts[id] = maps.Clone(map[string]any(f))
	}
	return templateData{
		Labels:      s.Alert.Labels,
		Annotations: s.Alert.Annotations,
		Alert:       s.Alert,
		Instance:    s.Instance,
		Facts:       facts,
		RunID:       s.RunID,
		Policy:      s.Policy,
	}
}
