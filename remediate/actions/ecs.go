package actions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"go.uber.org/zap"
)

const (
	defaultECSWaitTimeout = 10 * time.Minute
	maxECSServices        = 10 // DescribeServices takes at most ten
	ecsPollDelay          = 5 * time.Second
	ecsMaxPollDelay       = 30 * time.Second
)

// Log keys of the ECS action.
const (
	keyCluster      = "cluster"
	keyService      = "service"
	keyDeploymentID = "deployment_id"
)

// NewECSForceNewDeployment returns the ecs.force_new_deployment action, which restarts
// the tasks of services so that they load their configuration again.
func NewECSForceNewDeployment(a *AWS) Action {
	return &ecsForceNewDeployment{aws: a, pollDelay: ecsPollDelay}
}

type ecsForceNewDeployment struct {
	aws       *AWS
	pollDelay time.Duration // the first delay between DescribeServices calls while waiting
}

// Spec declares ecs.force_new_deployment.
func (e *ecsForceNewDeployment) Spec() Spec {
	return Spec{
		Name:    "ecs.force_new_deployment",
		Mutates: true,
		Doc: "Forces a new deployment of each service (UpdateService with forceNewDeployment), " +
			"so that ECS replaces their tasks with new ones that read their configuration, " +
			"certificates included, at start. Each service gets one call, never retried; a " +
			"service that fails does not stop the others, and the step then fails naming each " +
			"service's outcome. With wait, it then polls DescribeServices (read-only, retried) " +
			"until every new deployment is the service's only one, with its running count " +
			"equal to its desired count, or until wait_timeout: running out of time is not a " +
			"failure, stable says false and unstable names the services still rolling out.",
		Params: []Param{
			{Name: "cluster", Type: String, Required: true, Doc: "The cluster's name or ARN."},
			{Name: "services", Type: StringList, Required: true,
				Doc: "The services' names or ARNs, at most ten."},
			{Name: "wait", Type: Bool, Default: false,
				Doc: "Whether to wait until the services are stable; defaults to false."},
			{Name: "wait_timeout", Type: Duration, Default: defaultECSWaitTimeout,
				Doc: "How long to wait; defaults to 10m."},
			regionParam(),
		},
		Facts: []Fact{
			{Name: "services", Type: StringList, Doc: "The services given a new deployment."},
			{Name: "deployment_ids", Type: StringList,
				Doc: "The id of each new deployment (ecs-svc/...), in the order of services."},
			{Name: "stable", Type: Bool,
				Doc: "Whether every service was seen stable on its new deployment; false without wait."},
			{Name: "unstable", Type: StringList,
				Doc: "The services not seen stable when the wait ended (all of them without wait)."},
		},
		// DescribeServices is called only to wait
		IAM: []string{"ecs:UpdateService", "ecs:DescribeServices"},
	}
}

// updateServiceInput is one UpdateService input as plans and the audit log show it.
type updateServiceInput struct {
	Cluster            string `json:"Cluster"`
	Service            string `json:"Service"`
	ForceNewDeployment bool   `json:"ForceNewDeployment"`
	Region             string `json:"Region,omitempty"`
}

// ecsRestart is what a step asks for.
type ecsRestart struct {
	cluster  string
	services []string
	wait     bool
	timeout  time.Duration
	region   string
}

func parseECSRestart(p Params) (ecsRestart, error) {
	r := ecsRestart{cluster: strings.TrimSpace(p.String("cluster")), wait: p.Bool("wait"),
		timeout: p.Duration("wait_timeout"), region: p.String("region")}
	for _, s := range p.Strings("services") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(r.services, s) {
			r.services = append(r.services, s)
		}
	}
	switch {
	case r.cluster == "":
		return ecsRestart{}, Invalid("cluster: required")
	case len(r.services) == 0:
		return ecsRestart{}, Invalid("services: at least one service is required")
	case len(r.services) > maxECSServices:
		return ecsRestart{}, Invalid("services: %d given, at most %d", len(r.services), maxECSServices)
	case r.timeout < 0:
		return ecsRestart{}, Invalid("wait_timeout %s: must not be negative", r.timeout)
	}
	if r.timeout == 0 {
		r.timeout = defaultECSWaitTimeout
	}
	return r, nil
}

func (r ecsRestart) inputs() []updateServiceInput {
	out := make([]updateServiceInput, len(r.services))
	for i, s := range r.services {
		out[i] = updateServiceInput{Cluster: r.cluster, Service: s, ForceNewDeployment: true, Region: r.region}
	}
	return out
}

// Request returns the exact UpdateService calls Run makes, one per service.
func (e *ecsForceNewDeployment) Request(p Params, _ Env) (Request, error) {
	r, err := parseECSRestart(p)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "ecs", Operation: "UpdateService", Input: r.inputs()}, nil
}

// Run forces a new deployment of each service once, then waits when asked to.
func (e *ecsForceNewDeployment) Run(ctx context.Context, p Params, env Env) (Facts, error) {
	r, err := parseECSRestart(p)
	if err != nil {
		return nil, err
	}
	cfg, err := e.aws.regionalConfig(ctx, r.region)
	if err != nil {
		return nil, err
	}
	client := ecs.NewFromConfig(cfg)

	ids, err := e.restart(ctx, client, r, env)
	if err != nil {
		return nil, err
	}

	unstable := slices.Clone(r.services)
	if r.wait {
		unstable = e.waitStable(ctx, client, r, ids, env)
	}
	return Facts{
		"services":       slices.Clone(r.services),
		"deployment_ids": ids,
		"stable":         r.wait && len(unstable) == 0,
		"unstable":       unstable,
	}, nil
}

// restart makes one UpdateService call per service, with the SDK's retries off, and
// returns the new deployments' ids. It goes on after a failure, and then fails naming
// what became of each service.
func (e *ecsForceNewDeployment) restart(ctx context.Context, client *ecs.Client, r ecsRestart, env Env,
) ([]string, error) {
	ids := make([]string, len(r.services))
	var outcomes []string
	var first error
	for i, svc := range r.services {
		id, err := forceNewDeployment(ctx, client, r.cluster, svc)
		if err != nil {
			first = cmp.Or(first, err)
			outcomes = append(outcomes, fmt.Sprintf("%s: %v", svc, err))
			continue
		}
		ids[i] = id
		outcomes = append(outcomes, svc+": new deployment "+id)
		envLogger(env).Info("new deployment forced", zap.String(keyCluster, r.cluster),
			zap.String(keyService, svc), zap.String(keyDeploymentID, id))
	}
	if first == nil {
		return ids, nil
	}
	var se *StepError
	reason := ReasonFailed
	if errors.As(first, &se) {
		reason = se.Reason
	}
	msg := fmt.Sprintf("forcing new deployments in cluster %s: %s", r.cluster, strings.Join(outcomes, "; "))
	return nil, &StepError{Reason: reason, Err: &outcomesError{msg: msg, first: first}}
}

// outcomesError says what became of each service, and unwraps to the first failure,
// whose text it already holds.
type outcomesError struct {
	msg   string
	first error
}

func (e *outcomesError) Error() string { return e.msg }

func (e *outcomesError) Unwrap() error { return e.first }

func forceNewDeployment(ctx context.Context, client *ecs.Client, cluster, service string) (string, error) {
	out, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{
		Cluster: aws.String(cluster), Service: aws.String(service), ForceNewDeployment: true,
	}, func(o *ecs.Options) { o.Retryer = singleShot(o.Retryer) })
	if err != nil {
		return "", awsError("updating service "+service, err)
	}
	if out.Service == nil {
		return "", &StepError{Reason: ReasonFailed,
			Err: fmt.Errorf("updating service %s: the answer holds no service", service)}
	}
	for _, d := range out.Service.Deployments {
		if aws.ToString(d.Status) == "PRIMARY" {
			return aws.ToString(d.Id), nil
		}
	}
	return "", &StepError{Reason: ReasonFailed,
		Err: fmt.Errorf("updating service %s: the answer holds no primary deployment", service)}
}

// waitStable polls the services until each runs only its new deployment at its desired
// count, the deployment's rollout fails, or the wait times out, and returns the services
// not seen stable. A failed poll is logged, not returned: the deployments were made.
func (e *ecsForceNewDeployment) waitStable(ctx context.Context, client *ecs.Client, r ecsRestart, ids []string,
	env Env,
) []string {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	want := map[string]string{}
	for i, s := range r.services {
		want[s] = ids[i]
	}
	delay := e.pollDelay
	for {
		states, err := describeDeployments(ctx, client, r.cluster, r.services)
		if err != nil {
			envLogger(env).Warn("checking services failed", zap.String(keyCluster, r.cluster), zap.Error(err))
		}
		pending := pendingServices(r.services, want, states)
		if err == nil && (len(pending) == 0 || rolloutsFailed(pending, want, states)) {
			// stable, or never to be: a failed rollout is not retried by ECS
			return pending
		}
		select {
		case <-ctx.Done():
			return pending
		case <-time.After(delay):
		}
		delay = min(delay*2, ecsMaxPollDelay)
	}
}

// serviceState is what DescribeServices says of a service, keyed by the name or ARN
// the step gave.
type serviceState struct {
	deployments []ecstypes.Deployment
}

func describeDeployments(ctx context.Context, client *ecs.Client, cluster string, services []string,
) (map[string]serviceState, error) {
	out, err := client.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster: aws.String(cluster), Services: services,
	})
	if err != nil {
		return nil, awsError("describing services in cluster "+cluster, err)
	}
	states := map[string]serviceState{}
	for _, svc := range out.Services {
		for _, asked := range services {
			if asked == aws.ToString(svc.ServiceName) || asked == aws.ToString(svc.ServiceArn) {
				states[asked] = serviceState{deployments: svc.Deployments}
			}
		}
	}
	return states, nil
}

// pendingServices lists the services not yet stable on their new deployment. A service
// whose new deployment failed its rollout counts as pending: it will not become stable.
func pendingServices(services []string, want map[string]string, states map[string]serviceState) []string {
	pending := []string{}
	for _, s := range services {
		if !stableOn(states[s], want[s]) {
			pending = append(pending, s)
		}
	}
	return pending
}

// rolloutsFailed reports whether the new deployment of every pending service failed
// its rollout.
func rolloutsFailed(pending []string, want map[string]string, states map[string]serviceState) bool {
	for _, s := range pending {
		i := slices.IndexFunc(states[s].deployments, func(d ecstypes.Deployment) bool {
			return aws.ToString(d.Id) == want[s]
		})
		if i < 0 || states[s].deployments[i].RolloutState != ecstypes.DeploymentRolloutStateFailed {
			return false
		}
	}
	return true
}

// stableOn reports whether a service runs only deployment id, at its desired count,
// its rollout completed when ECS tracks one.
func stableOn(st serviceState, id string) bool {
	if len(st.deployments) != 1 {
		return false
	}
	d := st.deployments[0]
	if aws.ToString(d.Id) != id || d.RunningCount != d.DesiredCount {
		return false
	}
	return d.RolloutState == "" || d.RolloutState == ecstypes.DeploymentRolloutStateCompleted
}
