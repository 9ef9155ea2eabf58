package actions

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// escalateName is how policies call the escalation action.
const escalateName = "escalate"

// Labels and annotations escalations carry besides the original's.
const (
	labelPolicy            = "remediator_policy"
	labelOriginalAlertname = "original_alertname"
	annotationReason       = "reason"
	annotationRunID        = "remediator_run_id"
	defaultEscalationName  = "RemediatorEscalation"
)

type escalate struct {
	am  *Alertmanager
	now func() time.Time
}

// NewEscalate returns the escalate action, which posts an alert to am so that the
// user's own routes page a human.
func NewEscalate(am *Alertmanager) Action {
	return &escalate{am: am, now: time.Now}
}

func (e *escalate) Spec() Spec {
	return Spec{
		Name:    escalateName,
		Mutates: true,
		Doc: "Posts an alert to Alertmanager's API v2 so that a human is paged through the " +
			"user's own routes. The alert carries the original's labels, with alertname replaced " +
			"(the original's moves to original_alertname, so that the escalation does not route " +
			"back to remediator), remediator_policy, and the reason and run id as annotations.",
		Params: []Param{
			{Name: "reason", Type: String, Required: true, Doc: "Why a human is needed; the reason annotation."},
			{Name: "alertname", Type: String, Default: defaultEscalationName, Doc: "The escalation's alertname."},
			{Name: "labels", Type: Object, Doc: "Labels added to, or replacing, the original's (severity: page)."},
			{Name: "annotations", Type: Object, Doc: "Annotations added to, or replacing, the original's."},
			{Name: "duration", Type: Duration, Default: 6 * time.Hour,
				Doc: "How long the escalation stays active in Alertmanager unless posted again."},
		},
		Facts: []Fact{
			{Name: "alertname", Type: String, Doc: "The alertname posted."},
			{Name: "labels", Type: Object, Doc: "The labels posted."},
			{Name: "ends_at", Type: Time, Doc: "When the escalation resolves unless posted again."},
		},
	}
}

// alert builds the escalation alert.
func (e *escalate) alert(p Params, env Env) (PostableAlert, error) {
	lbls := maps.Clone(map[string]string(env.Alert.Labels))
	if lbls == nil {
		lbls = map[string]string{}
	}
	if err := mergeStrings(lbls, p["labels"], "labels",
		"alertname", labelOriginalAlertname, labelPolicy); err != nil {
		return PostableAlert{}, err
	}
	if orig := env.Alert.Labels["alertname"]; orig != "" {
		lbls[labelOriginalAlertname] = orig
	}
	name := p.String("alertname")
	if name == "" {
		return PostableAlert{}, Invalid("alertname: must not be empty")
	}
	lbls["alertname"] = name
	lbls[labelPolicy] = env.Policy

	ann := maps.Clone(map[string]string(env.Alert.Annotations))
	if ann == nil {
		ann = map[string]string{}
	}
	ann["summary"] = fmt.Sprintf("remediator needs a human for %s: %s", describeTarget(env), p.String("reason"))
	if err := mergeStrings(ann, p["annotations"], "annotations", annotationReason, annotationRunID); err != nil {
		return PostableAlert{}, err
	}
	ann[annotationReason] = p.String("reason")
	ann[annotationRunID] = env.RunID
	now := e.now()
	return PostableAlert{
		Labels:       lbls,
		Annotations:  ann,
		StartsAt:     now,
		EndsAt:       now.Add(p.Duration("duration")),
		GeneratorURL: env.Alert.GeneratorURL,
	}, nil
}

func describeTarget(env Env) string {
	name, inst := env.Alert.Labels["alertname"], env.Alert.Labels["instance"]
	if inst == "" {
		return name
	}
	return name + " on " + inst
}

// mergeStrings copies extra's string values into into, refusing the reserved keys that
// remediator sets itself (an alertname of the original's would route the escalation
// back to remediator).
func mergeStrings(into map[string]string, extra any, what string, reserved ...string) error {
	m, _ := extra.(map[string]any)
	for k, v := range m {
		if slices.Contains(reserved, k) {
			if k == "alertname" {
				return Invalid("%s.%s: set it with the alertname parameter", what, k)
			}
			return Invalid("%s.%s: reserved, remediator sets it", what, k)
		}
		s, ok := v.(string)
		if !ok {
			return Invalid("%s.%s: want a string, got %v", what, k, v)
		}
		into[k] = s
	}
	return nil
}

func (e *escalate) Request(p Params, env Env) (Request, error) {
	a, err := e.alert(p, env)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "alertmanager", Operation: "PostAlerts", Input: []PostableAlert{a}}, nil
}

func (e *escalate) Run(ctx context.Context, p Params, env Env) (Facts, error) {
	a, err := e.alert(p, env)
	if err != nil {
		return nil, err
	}
	if err := e.am.PostAlerts(ctx, []PostableAlert{a}); err != nil {
		return nil, fmt.Errorf("posting escalation: %w", err)
	}
	labels := make(map[string]any, len(a.Labels))
	for k, v := range a.Labels {
		labels[k] = v
	}
	return Facts{"alertname": a.Labels["alertname"], "labels": labels, "ends_at": a.EndsAt}, nil
}
